"""The card's limits state the image counts the card itself records, not a constant."""

from pathlib import Path

import pytest

from classifier.ml.card import newest_card, read_card
from classifier.ml.data import fetal_count
from classifier.ml.train import card_limits

MODELS_DIR = Path(__file__).resolve().parents[3] / "models"

# What a `--limit-per-label 3` run records: three images per label and source, outliers included.
THREE_PER_LABEL = {
    split: {
        "african": {"fetal_abdomen": 3, "fetal_brain": 3, "fetal_femur": 3, "fetal_thorax": 3},
        "fetal_planes_db": {"fetal_brain": 3, "fetal_thorax": 3, "maternal_cervix": 3, "other": 3},
    }
    for split in ("train", "val", "test")
}
TEST_METRICS = {"per_class": {"fetal_thorax": {"recall": 0.5, "support": 6}}}


class TestFetalCount:
    def test_counts_the_four_planes_of_every_source_and_no_outliers(self):
        assert fetal_count(THREE_PER_LABEL, "train") == 18

    def test_a_split_the_card_does_not_record_has_none(self):
        assert fetal_count({}, "test") == 0


class TestCardLimits:
    def test_state_the_recorded_training_and_test_counts(self):
        limits = card_limits(THREE_PER_LABEL, TEST_METRICS)

        assert limits[0].startswith("Trained on 18 fetal images from two public data sets")
        assert limits[1] == "The test split is small (18 fetal images): see the confidence intervals."
        assert "385" not in " ".join(limits) and "116" not in " ".join(limits)

    def test_reproduce_the_committed_card_from_its_own_counts(self):
        card_path = newest_card(MODELS_DIR)
        if card_path is None:
            pytest.skip(f"no model card committed in {MODELS_DIR}")
        card = read_card(card_path)

        assert card_limits(card["data"]["counts"], card["metrics"]["test"]) == card["limits"]
