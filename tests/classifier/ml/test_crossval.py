"""Patient-level folds for cross-validation: every patient held out once, never on two sides, test split unused."""

import numpy as np
import pytest

from classifier.ml.crossval import fold_records, patient_folds, study_out_of_fold
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


def test_a_training_share_drops_training_patients_only():
    records = _records()
    for fold in range(3):
        full = fold_records(records, fold, 3, seed=7, val_share=0.2)
        half = fold_records(records, fold, 3, seed=7, val_share=0.2, train_share=0.5)
        by_split = {split: {r.group for r in full if r.split == split} for split in ("train", "val", "test")}
        kept = {split: {r.group for r in half if r.split == split} for split in ("train", "val", "test")}

        assert kept["test"] == by_split["test"] and kept["val"] == by_split["val"]
        assert kept["train"] < by_split["train"]
        assert len(kept["train"]) == round(0.5 * len(by_split["train"]))
        assert fold_records(records, fold, 3, seed=7, val_share=0.2, train_share=0.5) == half


def test_a_training_share_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError, match="train_share must be in"):
        fold_records(_records(), 0, 3, seed=7, val_share=0.2, train_share=0)


def _out_of_fold_rows(seed: int = 0) -> list[dict]:
    """Held-out predictions of a classifier that calls a third of the thoraxes abdomen; mirrored ones agree."""
    rng = np.random.default_rng(seed)
    labels = ["fetal_brain", "fetal_thorax", "fetal_abdomen", "fetal_femur"]
    rows = []
    for index in range(200):
        true = index % 4
        logits = rng.normal(0, 0.5, 4)
        logits[true] += 3.0
        logits[1] -= 2.0  # thorax pushed down: some thoraxes fall to abdomen
        probabilities = np.exp(logits) / np.exp(logits).sum()
        rows.append(
            {
                "label": labels[true],
                "fold": index % 5,
                "source": ("african", "fetal_planes_db")[index % 2],
                "probabilities": probabilities.tolist(),
                "mirrored_probabilities": probabilities.tolist(),
            }
        )
    return rows


def test_out_of_fold_study_reports_cross_fitted_offsets_and_mirrored_figures():
    study = study_out_of_fold(_out_of_fold_rows())

    as_trained = study["as_trained"]["all"]["per_class"]["fetal_thorax"]["recall"]
    adjusted = study["class_offsets"]["cross_fitted"]["all"]["per_class"]["fetal_thorax"]["recall"]
    assert adjusted > as_trained
    fitted = study["class_offsets"]["fitted_on_all_folds"]
    assert fitted[1] == max(fitted) and len(study["class_offsets"]["per_fold_fitted_on_the_others"]) == 5
    assert set(study["as_trained"]) == {"all", "african", "fetal_planes_db"}
    assert study["mirrored_average"]["all"] == study["as_trained"]["all"]  # identical mirrors change nothing


def test_as_trained_figures_pool_every_held_out_row_and_split_them_by_source():
    def row(label: str, predicted: int, source: str, fold: int) -> dict:
        probabilities = [0.1, 0.1, 0.1, 0.1]
        probabilities[predicted] = 0.7
        return {
            "label": label,
            "fold": fold,
            "source": source,
            "probabilities": probabilities,
            "mirrored_probabilities": probabilities,
        }

    labels = ["fetal_brain", "fetal_thorax", "fetal_abdomen", "fetal_femur"]
    rows = [row(label, index, "african", fold) for fold in (0, 1) for index, label in enumerate(labels)]
    rows += [row("fetal_thorax", 2, "fetal_planes_db", 1), row("fetal_femur", 3, "fetal_planes_db", 0)]

    as_trained = study_out_of_fold(rows)["as_trained"]

    pooled = as_trained["all"]
    assert pooled["n"] == 10 and pooled["accuracy"] == 9 / 10
    assert pooled["confusion_matrix"] == [[2, 0, 0, 0], [0, 2, 1, 0], [0, 0, 2, 0], [0, 0, 0, 3]]
    assert pooled["per_class"]["fetal_thorax"]["recall"] == 2 / 3
    assert as_trained["african"]["accuracy"] == 1.0 and as_trained["african"]["n"] == 8
    assert as_trained["fetal_planes_db"]["confusion_matrix"][1] == [0, 0, 1, 0]
