import numpy as np
import pytest

from classifier.ml import metrics


class TestSummary:
    def test_computes_per_class_figures_and_the_confusion_matrix(self):
        y_true = np.array([0, 0, 1, 1, 2, 3])
        y_pred = np.array([0, 1, 1, 1, 2, 3])

        result = metrics.summary(y_true, y_pred, ["a", "b", "c", "d"])

        assert result["accuracy"] == pytest.approx(5 / 6)
        assert result["per_class"]["a"]["recall"] == pytest.approx(0.5)
        assert result["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
        assert result["confusion_matrix"][0] == [1, 1, 0, 0]


class TestBootstrapCi:
    def test_interval_contains_the_point_estimate(self):
        rng = np.random.default_rng(0)
        y_true = rng.integers(0, 4, 80)
        y_pred = np.where(rng.random(80) < 0.9, y_true, (y_true + 1) % 4)
        groups = [f"p{i // 2}" for i in range(80)]

        ci = metrics.bootstrap_ci(y_true, y_pred, groups, 4, rounds=300)

        assert ci["accuracy"][0] <= np.mean(y_true == y_pred) <= ci["accuracy"][1]


class TestChooseThreshold:
    def test_separates_confident_fetal_images_from_unsure_outliers(self):
        confidence_in = np.array([0.95, 0.9, 0.92, 0.88, 0.5])
        correct_in = np.array([True, True, True, True, False])
        confidence_out = np.array([0.3, 0.35, 0.4, 0.45])

        threshold, stats = metrics.choose_threshold(confidence_in, correct_in, confidence_out)

        assert 0.5 < threshold <= 0.88
        assert stats["correct_flagged"] == 0.0
        assert stats["ood_accepted"] == 0.0

    def test_uses_only_the_data_it_is_given(self):
        """The threshold depends on validation inputs alone: the same inputs give the same threshold."""
        args = (np.array([0.9, 0.8]), np.array([True, True]), np.array([0.4]))

        assert metrics.choose_threshold(*args)[0] == metrics.choose_threshold(*args)[0]
