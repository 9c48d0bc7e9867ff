"""Training and evaluating the segmenter: a short run on synthetic skulls learns them; the commands run end to
end on a few HC18 images; the committed model measures HC18 test images (both skip without ../shared)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from PIL import Image

from biometry.ml.seg_data import of_split, read_manifest, split_counts
from biometry.ml.seg_train import SegTrainConfig, fit_segmenter
from biometry.ml.segmentation import RUNTIME_KERAS, HeadSegmenter, keras_predictor, letterbox_grey
from tests.biometry.test_ellipse import drawn_ellipse

REPO_ROOT = Path(__file__).resolve().parents[3]
HC18 = REPO_ROOT.parent / "shared" / "data" / "hc18"
# Every committed head model: the app measures with the newest (settings.BIOMETRY_MODEL_CARD), v1 stays as its record.
CARDS = [REPO_ROOT / "models" / f"fetal-head-v{version}.card.json" for version in (1, 2)]


def skull_image(rng, width, height, ellipse):
    """A grey ultrasound-like picture: speckle, a brighter head with a bright skull ring; and its filled mask."""
    cx, cy, a, b, angle = ellipse
    outer = drawn_ellipse(cx, cy, a, b, angle, shape=(height, width))
    inner = drawn_ellipse(cx, cy, a - 3, b - 3, angle, shape=(height, width))
    picture = rng.normal(30, 12, (height, width))
    picture[inner] += 30
    picture[outer & ~inner] = rng.normal(210, 20, int((outer & ~inner).sum()))
    return np.clip(picture, 0, 255).astype(np.uint8), outer


def random_ellipse(rng, width, height):
    a = rng.uniform(0.22, 0.36) * width
    b = a * rng.uniform(0.7, 0.9)
    return (
        width / 2 + rng.uniform(-0.1, 0.1) * width,
        height / 2 + rng.uniform(-0.1, 0.1) * height,
        a,
        b,
        rng.uniform(0, 180),
    )


@pytest.fixture(scope="module")
def trained_on_skulls():
    """A tiny U-Net trained for a few seconds of CPU on synthetic skulls at 96x64."""
    rng = np.random.default_rng(7)
    pictures = [skull_image(rng, 96, 64, random_ellipse(rng, 96, 64)) for _ in range(48)]
    images = np.stack([p for p, _ in pictures])
    targets = np.stack([m.astype(np.float32) for _, m in pictures])
    config = SegTrainConfig(
        input_width=96,
        input_height=64,
        encoder="tiny",
        epochs=20,
        batch_size=8,
        seed=3,
        learning_rate=3e-3,
        bn_momentum=0.8,  # 100 steps: the decoder's BatchNormalization statistics must settle within them
    )
    model, fitted = fit_segmenter(
        (images[:40], targets[:40]), (images[40:], targets[40:]), config, weights_path=None, log=lambda message: None
    )
    return model, fitted


class TestShortTraining:
    def test_learns_to_segment_synthetic_skulls(self, trained_on_skulls):
        _, fitted = trained_on_skulls

        val_dice = fitted["history"]["val_hard_dice"]
        assert max(val_dice) > 0.85
        assert max(val_dice) > val_dice[0] + 0.2

    def test_find_head_fits_near_the_true_ellipse(self, trained_on_skulls):
        model, _ = trained_on_skulls
        segmenter = HeadSegmenter(
            keras_predictor(model),
            name="t",
            sha256="",
            runtime=RUNTIME_KERAS,
            input_width=96,
            input_height=64,
            inset_px=0.0,
        )
        rng = np.random.default_rng(99)
        truth = (96, 64, 56, 44, 35.0)  # an unseen image at twice the training size
        picture, _ = skull_image(rng, 192, 128, truth)

        finding = segmenter.find_head(Image.fromarray(picture))

        ellipse = finding.fit.ellipse
        assert math.hypot(ellipse.cx - truth[0], ellipse.cy - truth[1]) < 4
        assert ellipse.semi_major == pytest.approx(truth[2], rel=0.08)
        assert ellipse.semi_minor == pytest.approx(truth[3], rel=0.08)
        assert finding.total_ms >= finding.inference_ms > 0


@pytest.fixture(scope="module")
def hc18():
    if not (HC18 / "manifest.csv").is_file():
        pytest.skip(f"HC18 data not found at {HC18}")
    return HC18


class TestOnHc18:
    def test_split_counts_are_the_documented_ones(self, hc18):
        assert split_counts(read_manifest(hc18)) == {
            "train": {"images": 382, "subjects": 314},
            "val": {"images": 52, "subjects": 42},
            "test": {"images": 105, "subjects": 87},
        }

    def test_letterboxed_hc18_image_fills_the_middle_rows(self, hc18):
        record = read_manifest(hc18)[0]
        with Image.open(hc18 / record.file) as image:
            grey, box = letterbox_grey(image, 320, 224)

        assert (box.top, box.new_height) == (4, 216)
        assert grey[box.top : box.top + box.new_height].max() > 100

    @pytest.mark.django_db
    def test_train_and_evaluate_commands_run_end_to_end(self, hc18, tmp_path):
        call_command(
            "train_segmenter",
            data=str(hc18),
            out=str(tmp_path),
            name="smoke-v1",
            encoder="tiny",
            epochs=1,
            limit=4,
            input_width=96,
            input_height=64,
        )
        card_path = tmp_path / "smoke-v1.card.json"

        call_command("evaluate_segmenter", data=str(hc18), card=str(card_path), split="val", limit=2)

        card = json.loads(card_path.read_text())
        assert {"keras", "litert"} <= {"keras", *card["runtimes"]}
        assert card["metrics"]["val"]["n_images"] == 2
        assert "ci95" in card["metrics"]["val"]
        assert (tmp_path / "smoke-v1.card.md").read_text().startswith("# Model card: smoke v1")
        assert HeadSegmenter.from_card(card_path).runtime == "litert"

    @pytest.mark.parametrize("card_path", CARDS, ids=lambda path: path.name.removesuffix(".card.json"))
    def test_committed_model_reproduces_its_card_on_the_test_split(self, hc18, card_path):
        """Each committed model, run on every held-out test image, gives the figures its card reports: the
        model file, the pipeline (letterbox, flip, ellipse, inset) and the split are the ones the card describes."""
        from biometry.ml.seg_evaluate import evaluate_records, summarise

        card = json.loads(card_path.read_text())
        results = evaluate_records(HeadSegmenter.from_card(card_path), hc18, of_split(read_manifest(hc18), "test"))
        figures = summarise(results, with_ci=False)

        reported = card["metrics"]["test"]
        assert figures["n_images"] == reported["n_images"] == 105
        assert figures["hc_mae_mm"] == pytest.approx(reported["hc_mae_mm"], abs=0.01)
        assert figures["hc_p90_mm"] == pytest.approx(reported["hc_p90_mm"], abs=0.02)
        assert figures["dice_mean"] == pytest.approx(reported["dice_mean"], abs=0.0005)
        assert figures["bar"]["misses"] == reported["bar"]["misses"]
