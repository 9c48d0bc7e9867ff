"""Patient-level folds for cross-validation: every patient held out once, never on two sides, test split unused."""

import numpy as np

from classifier.ml.crossval import fold_records, patient_folds, summary_of_matrix
from classifier.ml.data import Record


def _records() -> list[Record]:
    rows = []
    for patient in range(30):
        split = ("train", "val", "test")[patient % 3]
        for image in range(1 + patient % 3):
            label = ("fetal_brain", "fetal_thorax", "other")[image]
            rows.append(Record(f"p{patient}-{image}.png", label, split, "african", f"p{patient}", "0" * 64))
    return rows


def test_folds_deal_patients_evenly_and_deterministically():
    groups = [f"p{i}" for i in range(23)] * 2
    folds = patient_folds(groups, 5, seed=1)

    assert set(folds) == set(groups)
    sizes = np.bincount(list(folds.values()), minlength=5)
    assert sizes.max() - sizes.min() <= 1
    assert patient_folds(groups, 5, seed=1) == folds
    assert patient_folds(groups, 5, seed=2) != folds


def test_each_patient_is_held_out_once_and_never_on_two_sides():
    records = _records()
    held_out = []
    for fold in range(3):
        assigned = fold_records(records, fold, 3, seed=7, val_share=0.2)
        sides = {}
        for record in assigned:
            sides.setdefault(record.group, set()).add(record.split)
        assert all(len(split) == 1 for split in sides.values())
        assert {"train", "val", "test"} == set().union(*sides.values())
        held_out += [g for g, split in sides.items() if split == {"test"}]

    pool = {r.group for r in records if r.split in ("train", "val")}
    assert sorted(held_out) == sorted(pool)


def test_the_manifests_test_split_is_never_used():
    records = _records()
    test_files = {r.file for r in records if r.split == "test"}
    for fold in range(3):
        assert not test_files & {r.file for r in fold_records(records, fold, 3, seed=7, val_share=0.2)}


def test_summary_of_a_pooled_confusion_matrix():
    matrix = np.array([[5, 1, 0, 0], [0, 3, 1, 0], [0, 0, 4, 0], [0, 0, 0, 2]])

    summary = summary_of_matrix(matrix)

    assert summary["confusion_matrix"] == matrix.tolist()
    assert summary["n"] == 16 and summary["accuracy"] == 14 / 16
    assert summary["per_class"]["fetal_thorax"]["recall"] == 0.75
