"""The fetal-planes data set: manifest rows, splits and decoded image arrays."""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from classifier.ml.preprocessing import load_image, preprocess

CLASS_NAMES = ("fetal_brain", "fetal_thorax", "fetal_abdomen", "fetal_femur")
OOD_LABELS = ("other", "maternal_cervix")  # ultrasound planes that are none of the four
SPLITS = ("train", "val", "test")

DATASET_CITATIONS = (
    'X. P. Burgos-Artizzu et al., "Evaluation of deep convolutional neural networks for automatic '
    'classification of common maternal fetal ultrasound planes", Scientific Reports 10, 10200 (2020). '
    "FETAL_PLANES_DB, Zenodo record 3904280, CC BY 4.0.",
    'M. Sendra-Balcells et al., "Generalisability of fetal ultrasound deep learning models to low-resource '
    'imaging settings in five African countries", Scientific Reports 13, 2728 (2023). '
    "African fetal planes, Zenodo record 7540448, CC BY 4.0.",
)


@dataclass(frozen=True)
class Record:
    file: str
    label: str
    split: str
    source: str
    group: str
    sha256: str

    @property
    def is_fetal(self) -> bool:
        return self.label in CLASS_NAMES


def read_manifest(data_dir: str | Path) -> list[Record]:
    with open(Path(data_dir) / "manifest.csv", newline="") as handle:
        return [
            Record(
                file=row["file"],
                label=row["label"],
                split=row["split"],
                source=row["source"],
                group=row["group"],
                sha256=row["sha256"],
            )
            for row in csv.DictReader(handle)
        ]


def load_array(data_dir: str | Path, records: list[Record], input_size: int, *, verify: bool = True) -> np.ndarray:
    """Decode and preprocess images into a uint8 batch (N, S, S, 3), checking each file's sha256."""
    batch = np.zeros((len(records), input_size, input_size, 3), dtype=np.uint8)
    for index, record in enumerate(records):
        data = (Path(data_dir) / record.file).read_bytes()
        if verify and hashlib.sha256(data).hexdigest() != record.sha256:
            raise ValueError(f"{record.file}: sha256 does not match the manifest")
        batch[index] = np.clip(np.rint(preprocess(load_image(data), input_size)), 0, 255).astype(np.uint8)
    return batch


def label_indices(records: list[Record]) -> np.ndarray:
    """Class index per record; -1 for the out-of-distribution labels."""
    return np.array([CLASS_NAMES.index(r.label) if r.is_fetal else -1 for r in records], dtype=np.int64)


def counts(records: list[Record]) -> dict[str, dict[str, dict[str, int]]]:
    """{split: {source: {label: n}}} for the model card."""
    tally = Counter((r.split, r.source, r.label) for r in records)
    result: dict[str, dict[str, dict[str, int]]] = {}
    for (split, source, label), n in sorted(tally.items()):
        result.setdefault(split, {}).setdefault(source, {})[label] = n
    return result


def fetal_count(split_counts: dict[str, dict[str, dict[str, int]]], split: str) -> int:
    """How many fetal images (the four planes, every source) ``counts`` records for ``split``."""
    by_source = split_counts.get(split, {}).values()
    return sum(n for labels in by_source for label, n in labels.items() if label in CLASS_NAMES)
