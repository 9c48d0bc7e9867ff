"""A training smoke test: a few images per label, one short epoch, into a temporary folder."""

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from classifier.ml.card import read_card
from classifier.ml.inference import PlaneClassifier, file_sha256
from classifier.ml.train import next_version


class TestTrainClassifierCommand:
    def test_writes_a_loadable_model_and_its_cards(self, data_dir, lite0_weights_path, tmp_path):
        call_command(
            "train_classifier",
            "--data",
            str(data_dir),
            "--out",
            str(tmp_path),
            "--model-version",
            "0",
            "--limit-per-label",
            "3",
            "--head-views",
            "2",
            "--head-epochs",
            "2",
            "--finetune-epochs",
            "1",
            "--members",
            "2",
            "--class-offsets",
            "0,0.5,-0.25,-0.25",
            "--input-size",
            "64",  # a smoke test of the recipe, not of the figures: small inputs keep CI short
            "--outliers-per-epoch",
            "4",  # with the 12 fetal images, one batch of 16 per fine-tuning epoch
        )

        card = read_card(tmp_path / "fetal-planes-v0.card.json")
        model_path = tmp_path / card["file"]
        assert card["sha256"] == file_sha256(model_path)
        assert card["classes"] == ["fetal_brain", "fetal_thorax", "fetal_abdomen", "fetal_femur"]
        assert 0 < card["needs_review_threshold"] < 1
        assert {"accuracy", "macro_f1", "per_class", "confusion_matrix", "ci", "per_source"} <= set(
            card["metrics"]["test"]
        )
        assert {"blank_noise", "non_fetal_ultrasound"} <= set(card["metrics"]["ood_test"])
        assert [len(member["history"]) for member in card["training"]["members"]] == [1, 1]
        assert card["training"]["selected"]["kind"] in {"uniform_soup", "best_member"}
        assert card["training"]["class_offsets"] == [0, 0.5, -0.25, -0.25]
        assert "--class-offsets 0.0,0.5,-0.25,-0.25" in card["training"]["command"]
        assert -1 <= card["novelty_threshold"] <= 1
        assert "Intended use" in (tmp_path / "fetal-planes-v0.card.md").read_text()
        classifier = PlaneClassifier.from_card(card, model_path)
        assert json.loads(json.dumps(card)) == card  # plain JSON, as the registry stores it
        assert classifier.model.outputs[0].shape[-1] == 4 and card["input_size"] == 64
        assert classifier.has_novelty and classifier.review.novelty_threshold == card["novelty_threshold"]


class TestCrossvalClassifierCommand:
    def test_pools_held_out_predictions_of_train_and_val_patients(self, data_dir, lite2_weights_path, tmp_path):
        out = tmp_path / "cv.json"
        call_command(
            "crossval_classifier",
            "--data",
            str(data_dir),
            "--folds",
            "2",
            "--folds-seed",
            "7",
            "--json-out",
            str(out),
            "--limit-per-label",
            "2",
            "--head-views",
            "1",
            "--head-epochs",
            "1",
            "--finetune-epochs",
            "1",
            "--backbone",
            "lite2",
            "--train-share",
            "0.8",
            "--input-size",
            "64",
            "--outliers-per-epoch",
            "4",
            stdout=io.StringIO(),
        )

        result = json.loads(out.read_text())
        assert [fold["fold"] for fold in result["per_fold"]] == [0, 1]
        assert result["seed"] == 7 and result["train_share"] == 0.8
        assert result["config"]["finetune_epochs"] == 1 and result["config"]["limit_per_label"] == 2
        assert result["config"]["backbone"] == "lite2" and result["config"]["input_size"] == 64
        assert result["pooled"]["n"] == sum(fold["n"] for fold in result["per_fold"]) > 0
        out_of_fold = result["out_of_fold"]
        assert len(out_of_fold) == result["pooled"]["n"]
        assert {row["fold"] for row in out_of_fold} == {0, 1}
        assert all(abs(sum(row["probabilities"]) - 1) < 1e-3 for row in out_of_fold)
        assert len({row["file"] for row in out_of_fold}) == len(out_of_fold)  # each image held out once
        assert "test split is not used" in result["note"]

    def test_refuses_a_training_share_outside_zero_to_one(self, tmp_path):
        with pytest.raises(CommandError, match="--train-share must be in"):
            call_command("crossval_classifier", "--train-share", "1.5", "--data", str(tmp_path))


class TestTrainClassifierGuards:
    @pytest.mark.parametrize("offsets", ["0,1,2", "0,a,0,0"])
    def test_refuses_class_offsets_that_are_not_one_number_per_class(self, offsets, tmp_path):
        with pytest.raises(CommandError, match="comma-separated numbers|expected 4 numbers"):
            call_command("train_classifier", "--out", str(tmp_path), "--class-offsets", offsets, stdout=io.StringIO())
        assert list(tmp_path.iterdir()) == []

    def test_refuses_an_unknown_backbone_by_name(self, tmp_path):
        with pytest.raises(CommandError, match="invalid choice: 'resnet50'"):
            call_command("train_classifier", "--out", str(tmp_path), "--backbone", "resnet50", stdout=io.StringIO())
        assert list(tmp_path.iterdir()) == []

    def test_refuses_to_replace_an_existing_version_and_changes_nothing(self, tmp_path):
        card = tmp_path / "fetal-planes-v2.card.json"
        card.write_text("{}")

        with pytest.raises(CommandError, match="already exist"):
            call_command("train_classifier", "--out", str(tmp_path), "--model-version", "2", stdout=io.StringIO())

        assert card.read_text() == "{}"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["fetal-planes-v2.card.json"]

    def test_the_default_version_is_the_next_free_one(self, tmp_path):
        assert next_version(tmp_path) == "1"
        for name in ("fetal-planes-v1.card.json", "fetal-planes-v10.card.json", "fetal-planes-vcv0.card.json"):
            (tmp_path / name).write_text("{}")
        assert next_version(tmp_path) == "11"
