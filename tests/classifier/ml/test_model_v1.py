"""The committed model v1: its card's figures reproduce, it meets the bar, and its heatmaps look at the anatomy."""

import json

import numpy as np
import pytest
from django.core.management import call_command
from PIL import Image

from classifier.ml.card import read_card
from classifier.ml.data import read_manifest
from classifier.ml.inference import PlaneClassifier, file_sha256
from classifier.ml.preprocessing import load_image

from .conftest import MODELS_DIR

CARD_PATH = MODELS_DIR / "fetal-planes-v1.card.json"


@pytest.fixture(scope="module")
def card() -> dict:
    if not CARD_PATH.is_file():
        pytest.skip(f"{CARD_PATH} is not committed yet")
    return read_card(CARD_PATH)


@pytest.fixture(scope="module")
def classifier(card) -> PlaneClassifier:
    return PlaneClassifier.load(
        CARD_PATH.parent / card["file"],
        class_names=card["classes"],
        input_size=card["input_size"],
        review_threshold=card["needs_review_threshold"],
        expected_sha256=card["sha256"],
    )


class TestModelCard:
    def test_describes_the_committed_file(self, card):
        assert card["name"] == "fetal-planes"
        assert card["version"] == "1"
        assert card["sha256"] == file_sha256(CARD_PATH.parent / card["file"])
        assert card["classes"] == ["fetal_brain", "fetal_thorax", "fetal_abdomen", "fetal_femur"]
        for key in ("intended_use", "limits", "data", "training", "library_versions", "preprocessing"):
            assert card[key]
        assert len(card["data"]["citations"]) == 2


class TestEvaluateClassifierCommand:
    def test_reproduces_the_card_and_meets_the_bar(self, card, data_dir, tmp_path):
        out = tmp_path / "metrics.json"

        call_command(
            "evaluate_classifier",
            "--card",
            str(CARD_PATH),
            "--data",
            str(data_dir),
            "--json-out",
            str(out),
            "--check-bar",
        )

        result = json.loads(out.read_text())
        test = card["metrics"]["test"]
        assert result["accuracy"] == pytest.approx(test["accuracy"], abs=1e-9)
        assert result["macro_f1"] == pytest.approx(test["macro_f1"], abs=1e-9)
        assert result["confusion_matrix"] == test["confusion_matrix"]
        for kind, block in card["metrics"]["ood_test"].items():
            assert result["ood"][kind]["flagged_share"] == pytest.approx(block["flagged_share"], abs=1e-9)


def _non_black_mask(image: Image.Image) -> np.ndarray:
    """Pixels of the image's content: not the black background around the ultrasound sector."""
    grey = np.asarray(image.convert("L").resize((image.width // 8, image.height // 8), Image.Resampling.BOX))
    small = grey > 12
    return np.asarray(Image.fromarray(small.astype(np.uint8) * 255).resize(image.size, Image.Resampling.NEAREST)) > 0


class TestHeatmap:
    def test_brain_heatmaps_peak_inside_the_non_black_area(self, classifier, data_dir):
        records = [r for r in read_manifest(data_dir) if r.split == "test" and r.label == "fetal_brain"]
        chosen = [
            records[0],
            records[len(records) // 2],
            records[-1],
        ]  # a fixed spread over the manifest (both sources)

        for record in chosen:
            image = load_image((data_dir / record.file).read_bytes())
            heat = classifier.heatmap(image)
            row, col = np.unravel_index(int(np.argmax(heat)), heat.shape)

            assert heat.shape == (image.height, image.width)
            assert heat.max() > heat.min()
            assert _non_black_mask(image)[row, col], f"{record.file}: hottest point {row, col} on black background"
