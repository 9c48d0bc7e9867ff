"""HC18 for the segmenter: the manifest, the subject-level split, letterboxed arrays and augmentation.

Split rule (docs/biometry.md, fixed before the first full run): each subject goes wholly to one split, by
u = the first 16 hex digits of sha256("hc18-split-v1:<subject>") / 16^16: test when u < 0.2, val when
u < 0.3, else train.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from biometry.ml.segmentation import letterbox_grey, letterbox_mask

SPLIT_SALT = "hc18-split-v1"
TEST_SHARE, VAL_SHARE = 0.2, 0.1
SPLITS = ("train", "val", "test")
HC18_CITATION = (
    'HC18 training set: T. L. A. van den Heuvel, D. de Bruijn, C. L. de Korte, B. van Ginneken, "Automated '
    'measurement of fetal head circumference using 2D ultrasound images", PLOS ONE 13(8): e0200412 (2018); '
    "Zenodo record 1327317; CC BY 4.0."
)


@dataclass(frozen=True)
class Hc18Record:
    file: str
    mask: str
    subject: str
    pixel_size_mm: float
    hc_mm: float

    @property
    def split(self) -> str:
        return split_of(self.subject)


def split_of(subject: str) -> str:
    u = int(hashlib.sha256(f"{SPLIT_SALT}:{subject}".encode()).hexdigest()[:16], 16) / 16**16
    return "test" if u < TEST_SHARE else "val" if u < TEST_SHARE + VAL_SHARE else "train"


def read_manifest(root: str | Path) -> list[Hc18Record]:
    """The manifest's rows, sorted by subject then file."""
    with open(Path(root) / "manifest.csv", newline="") as handle:
        rows = [
            Hc18Record(row["file"], row["mask"], row["subject"], float(row["pixel_size_mm"]), float(row["hc_mm"]))
            for row in csv.DictReader(handle)
        ]
    return sorted(rows, key=lambda record: (record.subject, record.file))


def of_split(records: list[Hc18Record], split: str) -> list[Hc18Record]:
    return [record for record in records if record.split == split]


def split_counts(records: list[Hc18Record]) -> dict[str, dict[str, int]]:
    return {
        split: {
            "images": len(of_split(records, split)),
            "subjects": len({record.subject for record in of_split(records, split)}),
        }
        for split in SPLITS
    }


def read_mask(root: str | Path, record: Hc18Record) -> np.ndarray:
    return np.asarray(Image.open(Path(root) / record.mask).convert("L")) > 127


def load_letterboxed(
    root: str | Path, records: list[Hc18Record], input_width: int, input_height: int
) -> tuple[np.ndarray, np.ndarray]:
    """Letterboxed grey images (N, H, W) uint8 and soft mask targets (N, H, W) float32 in 0..1."""
    images = np.zeros((len(records), input_height, input_width), np.uint8)
    targets = np.zeros((len(records), input_height, input_width), np.float32)
    for index, record in enumerate(records):
        with Image.open(Path(root) / record.file) as image:
            images[index] = letterbox_grey(image, input_width, input_height)[0]
        targets[index] = letterbox_mask(read_mask(root, record).astype(np.float32), input_width, input_height)
    return images, targets


def _scaled(image: np.ndarray, target: np.ndarray, scale: float, shift: tuple[int, int]):
    """Zoom both about the centre by ``scale`` and move them by ``shift`` (dx, dy) px, black/zero outside."""
    height, width = image.shape
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    zoomed = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
    zoomed_target = np.asarray(Image.fromarray(target).resize(size, Image.Resampling.BILINEAR))
    out_image, out_target = np.zeros_like(image), np.zeros_like(target)
    left = (width - size[0]) // 2 + shift[0]
    top = (height - size[1]) // 2 + shift[1]
    src_x0, src_y0 = max(0, -left), max(0, -top)
    dst_x0, dst_y0 = max(0, left), max(0, top)
    w = min(size[0] - src_x0, width - dst_x0)
    h = min(size[1] - src_y0, height - dst_y0)
    out_image[dst_y0 : dst_y0 + h, dst_x0 : dst_x0 + w] = zoomed[src_y0 : src_y0 + h, src_x0 : src_x0 + w]
    out_target[dst_y0 : dst_y0 + h, dst_x0 : dst_x0 + w] = zoomed_target[src_y0 : src_y0 + h, src_x0 : src_x0 + w]
    return out_image, np.clip(out_target, 0, 1)


def augment(image: np.ndarray, target: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One training view: flips (horizontal, vertical), scale 0.9-1.1 with a shift of up to 8% of each side,
    then brightness, contrast and gamma jitter of the grey values. Returns float32 grey and target."""
    if rng.random() < 0.5:
        image, target = image[:, ::-1], target[:, ::-1]
    if rng.random() < 0.5:
        image, target = image[::-1], target[::-1]
    height, width = image.shape
    scale = float(rng.uniform(0.9, 1.1))
    shift = (int(rng.integers(-width // 12, width // 12 + 1)), int(rng.integers(-height // 12, height // 12 + 1)))
    image, target = _scaled(np.ascontiguousarray(image), np.ascontiguousarray(target), scale, shift)
    values = image.astype(np.float32) / 255.0
    values = np.clip(values, 0, 1) ** float(np.exp(rng.uniform(np.log(0.7), np.log(1.4))))
    values = (values - values.mean()) * float(rng.uniform(0.75, 1.3)) + values.mean() + float(rng.uniform(-0.1, 0.1))
    return np.clip(values * 255.0, 0, 255), target
