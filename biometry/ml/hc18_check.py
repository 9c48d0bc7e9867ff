"""HC from HC18's filled annotation masks against the sonographer's HC: a check of the measurement chain.

`python -m biometry.ml.hc18_check [../shared/data/hc18]` fits every mask in manifest.csv, measures HC with the
row's pixel size and prints the differences to `hc_mm`, raw and after insetting the ellipse by the outline's
half-width the masks carry (the figures in docs/biometry.md come from this).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from biometry.ml.ellipse import ellipse_fit, head_measurement

DEFAULT_ROOT = Path(__file__).resolve().parents[3] / "shared" / "data" / "hc18"


def annotation_differences(root: Path, *, inset_px: float = 0.0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Per mask: HC difference (mm, fit minus sonographer), outline offset (px) and the files flagged."""
    with open(root / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    differences, offsets, flagged = [], [], []
    for row in rows:
        mask = np.asarray(Image.open(root / row["mask"]).convert("L")) > 127
        fit = ellipse_fit(mask)
        pixel_size, reference = float(row["pixel_size_mm"]), float(row["hc_mm"])
        raw = head_measurement(fit.ellipse, pixel_size_mm=pixel_size).hc_mm - reference
        ellipse = fit.ellipse.inset(inset_px) if inset_px else fit.ellipse
        differences.append(head_measurement(ellipse, pixel_size_mm=pixel_size).hc_mm - reference)
        offsets.append(raw / pixel_size / (2 * np.pi))  # how far outside the reference ellipse the mask's edge is
        if fit.flags:
            flagged.append(f"{row['file']} {','.join(fit.flags)}")
    return np.array(differences), np.array(offsets), flagged


def _summary(differences: np.ndarray) -> str:
    absolute = np.abs(differences)
    return (
        f"mean |d| {absolute.mean():.3f} mm, median {np.median(absolute):.3f}, 90th percentile "
        f"{np.percentile(absolute, 90):.3f}, max {absolute.max():.3f}; mean signed {differences.mean():+.3f} mm"
    )


def main(argv: list[str]) -> None:
    root = Path(argv[0]) if argv else DEFAULT_ROOT
    raw, offsets, flagged = annotation_differences(root)
    print(f"{len(raw)} masks. As filled: {_summary(raw)}")
    print(f"Mask edge outside the sonographer's ellipse: {offsets.mean():.3f} px (sd {offsets.std():.3f})")
    inset = round(float(offsets.mean()), 2)
    inset_differences, _, _ = annotation_differences(root, inset_px=inset)
    print(f"Inset by {inset} px: {_summary(inset_differences)}")
    print(f"Flagged: {len(flagged)} {flagged}")


if __name__ == "__main__":
    main(sys.argv[1:])
