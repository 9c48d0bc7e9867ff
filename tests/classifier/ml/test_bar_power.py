"""The chance of meeting the bar on a small test split, simulated from out-of-fold predictions."""

import csv
import json
import math

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from classifier.ml.bar_power import assumed_rates, block, out_of_fold_counts, simulate, split_support
from classifier.ml.data import CLASS_NAMES
from classifier.ml.metrics import summary

CLASSES = list(CLASS_NAMES)
THORAX = CLASSES.index("fetal_thorax")
ABDOMEN = CLASSES.index("fetal_abdomen")


def perfect_counts(per_class: int = 50) -> np.ndarray:
    return np.eye(len(CLASSES), dtype=np.int64) * per_class


def binomial_at_least(n: int, p: float, k: int) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))


class TestSimulate:
    def test_a_classifier_that_never_errs_always_meets_the_bar(self):
        support = {"a": np.array([20, 6, 5, 5]), "b": np.array([23, 12, 22, 23])}
        result = simulate({"a": perfect_counts(), "b": perfect_counts()}, support, CLASSES, draws=200)
        assert result["pass_share"] == 1.0
        assert result["miss_share"] == {}

    def test_matches_the_binomial_chance_when_only_thorax_recall_is_at_risk(self):
        # 9 in 10 thoraxes right, everything else perfect: with 12 test thoraxes the bar (0.90) needs 11,
        # and accuracy and macro-F1 hold with one miss, so the pass share is P(Binomial(12, 0.9) >= 11).
        counts = perfect_counts(100)
        counts[THORAX] = [0, 90, 10, 0]
        support = {"a": np.array([60, 12, 60, 60])}
        result = simulate({"a": counts}, support, CLASSES, draws=20000, seed=1, plug_in=True)
        assert result["pass_share"] == pytest.approx(binomial_at_least(12, 0.9, 11), abs=0.015)
        # Macro-F1 falls short too on some draws, but only on ones where thorax recall already did.
        for item in ("all: fetal_thorax recall", "source a: fetal_thorax recall"):
            assert result["miss_share"][item] == pytest.approx(1 - result["pass_share"])

    def test_drawn_rates_settle_on_the_measured_ones_when_many_were_measured(self):
        counts = perfect_counts(1000)
        counts[THORAX] = [0, 900, 100, 0]
        support = {"a": np.array([60, 12, 60, 60])}
        plug_in = simulate({"a": counts}, support, CLASSES, draws=20000, seed=2, plug_in=True)
        drawn = simulate({"a": counts}, support, CLASSES, draws=20000, seed=2)
        assert drawn["pass_share"] == pytest.approx(plug_in["pass_share"], abs=0.02)

    def test_a_coin_flip_between_thorax_and_abdomen_almost_never_passes(self):
        counts = perfect_counts()
        counts[THORAX] = [0, 25, 25, 0]
        result = simulate({"a": counts}, {"a": np.array([20, 12, 20, 20])}, CLASSES, draws=2000)
        assert result["pass_share"] < 0.01

    def test_refuses_a_test_class_that_cross_validation_never_saw(self):
        counts = perfect_counts()
        counts[ABDOMEN] = 0
        with pytest.raises(ValueError, match="no out-of-fold predictions for a fetal_abdomen"):
            simulate({"a": counts}, {"a": np.array([5, 5, 5, 5])}, CLASSES, draws=10)
        with pytest.raises(ValueError, match="for b fetal_brain"):
            simulate({"a": perfect_counts()}, {"b": np.array([5, 0, 0, 0])}, CLASSES, draws=10)


class TestAssumedRates:
    def test_spreads_the_errors_evenly_over_the_other_classes(self):
        rates = assumed_rates(0.97, 4)
        assert np.diag(rates).tolist() == [0.97] * 4
        assert rates.sum(axis=1) == pytest.approx([1.0] * 4)
        assert rates[0, 1] == pytest.approx(0.01)

    def test_a_larger_test_split_tells_a_good_model_from_a_borderline_one(self):
        def pass_share(recall: float, per_class: int) -> float:
            support = {"a": np.full(4, per_class), "b": np.full(4, per_class)}
            counts = {source: assumed_rates(recall, 4) for source in support}
            return simulate(counts, support, CLASSES, draws=2000, seed=3, plug_in=True)["pass_share"]

        assert pass_share(0.97, 100) > 0.9 > pass_share(0.97, 6)
        assert pass_share(0.90, 100) < 0.01

    def test_refuses_a_recall_outside_zero_to_one(self):
        with pytest.raises(ValueError, match="recall must be in"):
            assumed_rates(1.2, 4)


class TestBlock:
    def test_agrees_with_the_evaluation_summary(self):
        rng = np.random.default_rng(0)
        y_true = rng.integers(0, 4, 200)
        y_pred = np.where(rng.random(200) < 0.85, y_true, rng.integers(0, 4, 200))
        reference = summary(y_true, y_pred, CLASSES)
        figures = block(np.array(reference["confusion_matrix"]), CLASSES)
        assert figures["accuracy"] == pytest.approx(reference["accuracy"])
        assert figures["macro_f1"] == pytest.approx(reference["macro_f1"])
        for name in CLASSES:
            assert figures["per_class"][name]["recall"] == pytest.approx(reference["per_class"][name]["recall"])


def test_counts_and_support_are_kept_per_source():
    rows = [
        {"source": "a", "label": "fetal_thorax", "probabilities": [0.1, 0.2, 0.6, 0.1]},
        {"source": "a", "label": "fetal_thorax", "probabilities": [0.1, 0.7, 0.1, 0.1]},
        {"source": "b", "label": "fetal_brain", "probabilities": [0.9, 0.0, 0.1, 0.0]},
    ]
    counts = out_of_fold_counts(rows, CLASSES)
    assert counts["a"][THORAX].tolist() == [0, 1, 1, 0]
    assert counts["b"].sum() == 1
    support = split_support([("a", "fetal_thorax"), ("a", "fetal_thorax"), ("b", "fetal_femur")], CLASSES)
    assert support["a"].tolist() == [0, 2, 0, 0] and support["b"].tolist() == [0, 0, 0, 1]


class TestBarPowerCommand:
    def write_inputs(self, tmp_path, *, thorax_right: int):
        rows, manifest = [], []
        for index, label in enumerate(CLASSES):
            for n in range(40):
                probabilities = np.eye(len(CLASSES))[index]
                if label == "fetal_thorax" and n >= thorax_right:
                    probabilities = np.eye(len(CLASSES))[ABDOMEN]
                rows.append({"source": "a", "label": label, "probabilities": probabilities.tolist()})
            manifest += [{"file": f"{label}{n}.png", "label": label, "split": "test", "source": "a"} for n in range(10)]
        crossval = tmp_path / "crossval.json"
        crossval.write_text(json.dumps({"out_of_fold": rows}))
        with open(tmp_path / "manifest.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, ["file", "label", "split", "source", "group", "sha256"])
            writer.writeheader()
            writer.writerows({**row, "group": row["file"], "sha256": ""} for row in manifest)
        return crossval

    def test_prints_the_pass_share_for_each_test_size(self, tmp_path, capsys):
        crossval = self.write_inputs(tmp_path, thorax_right=40)
        # A classifier that never errs meets the bar on every draw, so a few hundred draws prove what 20000 would.
        call_command(
            "bar_power", "--crossval", str(crossval), "--data", str(tmp_path), "--scale", "1", "3", "--draws", "300"
        )
        out = capsys.readouterr().out
        assert "test split x1: a [10, 10, 10, 10]" in out and "test split x3: a [30, 30, 30, 30]" in out
        assert out.count("meets the whole bar in 100.0%") == 4

    def test_a_weak_thorax_shows_in_the_misses(self, tmp_path, capsys):
        crossval = self.write_inputs(tmp_path, thorax_right=30)
        call_command("bar_power", "--crossval", str(crossval), "--data", str(tmp_path), "--draws", "500")
        out = capsys.readouterr().out
        assert "misses all: fetal_thorax recall" in out

    def test_sizes_a_test_split_for_an_assumed_recall(self, tmp_path, capsys):
        self.write_inputs(tmp_path, thorax_right=40)
        call_command(
            "bar_power", "--assume-recall", "0.99", "--data", str(tmp_path), "--per-class", "5", "--draws", "300"
        )
        out = capsys.readouterr().out
        assert "test split 5 per class and source: a [5, 5, 5, 5]" in out
        assert out.count("meets the whole bar") == 1 and "plug-in rates" in out

    def test_bad_inputs_are_refused_clearly(self, tmp_path):
        with pytest.raises(CommandError, match="cannot read the inputs"):
            call_command("bar_power", "--crossval", str(tmp_path / "missing.json"), "--data", str(tmp_path))
        crossval = self.write_inputs(tmp_path, thorax_right=40)
        with pytest.raises(CommandError, match="at least 1"):
            call_command("bar_power", "--crossval", str(crossval), "--data", str(tmp_path), "--draws", "0")
        with pytest.raises(CommandError, match="recall must be in"):
            call_command("bar_power", "--assume-recall", "0", "--data", str(tmp_path))
