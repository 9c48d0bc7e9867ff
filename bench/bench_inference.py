"""Median latency of one warm image through the worker's path: decode, preprocess, predict.

    python bench/bench_inference.py [--card models/fetal-planes-v3.card.json] [--image PATH] [--runs 50] [--no-fold]
                                    [--runtime litert|keras]

Without --card it times the newest committed model; without --runtime, on what the worker runs it with (LiteRT
when the card lists a LiteRT file, else Keras).

Without --image it uses the first test image of ../shared/data/fetal-planes, or a
synthetic 800x600 PNG when the data set is absent.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from classifier.ml.card import newest_card, read_card  # noqa: E402
from classifier.ml.inference import PlaneClassifier  # noqa: E402
from classifier.ml.litert import LiteRtPlaneClassifier, litert_entry  # noqa: E402
from classifier.ml.preprocessing import load_image  # noqa: E402

DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "fetal-planes"


def sample_bytes() -> tuple[bytes, str]:
    manifest = DATA_DIR / "manifest.csv"
    if manifest.is_file():
        from classifier.ml.data import read_manifest

        record = next(r for r in read_manifest(DATA_DIR) if r.split == "test" and r.is_fetal)
        return (DATA_DIR / record.file).read_bytes(), record.file
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (600, 800), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue(), "synthetic 800x600 PNG"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--card", default=str(newest_card(REPO_ROOT / "models")))
    parser.add_argument("--image", default=None)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--no-fold", action="store_true", help="keep BatchNormalization unfolded (as saved)")
    parser.add_argument("--runtime", choices=["litert", "keras"], default=None)
    args = parser.parse_args()

    card = read_card(args.card)
    runtime = args.runtime or ("litert" if litert_entry(card) and not args.no_fold else "keras")
    if runtime == "litert":
        classifier = LiteRtPlaneClassifier.from_card(card, Path(args.card).parent, num_threads=os.cpu_count() or 1)
    else:
        classifier = PlaneClassifier.from_card(card, Path(args.card).parent / card["file"], fold=not args.no_fold)
    data, name = (Path(args.image).read_bytes(), args.image) if args.image else sample_bytes()

    for _ in range(args.warmup):
        classifier.classify(load_image(data))
    timings = []
    for _ in range(args.runs):
        started = time.perf_counter()
        result = classifier.classify(load_image(data))
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    folding = "unfolded" if args.no_fold else "BatchNorm folded"
    model = f"{card['name']} v{card['version']} ({card['input_size']} px, {folding}, {classifier.runtime})"
    print(f"model {model}, image {name} ({len(data)} bytes)")
    print(f"prediction {result.label} {result.confidence:.3f}, needs_review {result.needs_review}")
    print(
        f"median warm latency (decode + preprocess + predict): {statistics.median(timings):.1f} ms "
        f"(p90 {timings[int(0.9 * (len(timings) - 1))]:.1f} ms, {args.runs} runs)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
