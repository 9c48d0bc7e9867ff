"""The web process's own work for one uploaded still: decode, check, the display PNG (``inspect_upload``).

    python bench/bench_upload.py [--images 40] [--rounds 3] [--levels 6,1]

Times ``patients.services.inspect_upload`` on real test images of ../shared/data/fetal-planes (synthetic 800x600
PNGs when the data set is absent) once per zlib level of the display PNG: 6 was the encoder's default before
issue 20, 1 is ``DISPLAY_PNG_COMPRESS_LEVEL`` now. The levels alternate image by image, so a busy machine slows
them alike. Ends with one line of figures: per level the median and p95 per upload and the stored PNG's size.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "fetal-planes"


def sample_images(count: int) -> list[bytes]:
    manifest = DATA_DIR / "manifest.csv"
    if manifest.is_file():
        from classifier.ml.data import read_manifest

        records = [r for r in read_manifest(DATA_DIR) if r.split == "test"]
        step = max(1, len(records) // count)
        return [(DATA_DIR / r.file).read_bytes() for r in records[::step][:count]]
    import io

    import numpy as np
    from PIL import Image

    print(f"NOTE: {DATA_DIR} has no manifest.csv; timing synthetic 800x600 PNGs")
    images = []
    for seed in range(count):
        buffer = io.BytesIO()
        pixels = np.random.default_rng(seed).integers(0, 255, (600, 800), dtype=np.uint8)
        Image.fromarray(pixels).save(buffer, format="PNG")
        images.append(buffer.getvalue())
    return images


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--levels", default="6,1", help="zlib levels of the display PNG to compare")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fetalsite.settings.test")
    import django

    django.setup()
    from patients import imaging
    from patients.services import inspect_upload

    git = [shutil.which("git") or "/usr/bin/git", "rev-parse", "--short", "HEAD"]
    commit = subprocess.run(git, capture_output=True, text=True, cwd=REPO_ROOT, check=False)  # noqa: S603
    print(f"commit {commit.stdout.strip()}; {os.cpu_count()} cores; command: python {' '.join(sys.argv)}")
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    images = sample_images(args.images)
    levels = [int(level) for level in args.levels.split(",")]
    times: dict[int, list[float]] = {level: [] for level in levels}
    sizes: dict[int, int] = dict.fromkeys(levels, 0)
    inspect_upload(images[0], "warm-up.png")
    for _ in range(args.rounds):
        for data in images:
            for level in levels:  # alternating, so load changes hit every level alike
                imaging.DISPLAY_PNG_COMPRESS_LEVEL = level
                start = time.perf_counter()
                facts = inspect_upload(data, "scan.png")
                times[level].append((time.perf_counter() - start) * 1000)
                sizes[level] += len(facts.derived_png)
    figures = []
    for level in levels:
        ordered = sorted(times[level])
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        kib = sizes[level] / args.rounds / len(images) / 1024
        figures.append(f"level {level}: median {statistics.median(ordered):.1f} ms, p95 {p95:.1f} ms, {kib:.0f} KiB")
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"{len(images)} images x {args.rounds} rounds; load average at end {load}")
    print("; ".join(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
