"""The segmenter's pieces with known answers: split rule, letterbox there and back, fit and inset, the flip
TTA, safe loading (sha256 checked before anything is read into Keras or LiteRT)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from biometry.ml.seg_data import Hc18Record, augment, split_of
from biometry.ml.segmentation import (
    HeadSegmenter,
    Letterbox,
    ModelIntegrityError,
    build_untrained_segmenter_files,
    fit_head,
    letterbox_grey,
    letterbox_mask,
    probabilities_on_image,
)
from tests.biometry.test_ellipse import drawn_ellipse


@pytest.fixture(scope="module")
def card_path(tmp_path_factory):
    return build_untrained_segmenter_files(tmp_path_factory.mktemp("segmenter"), litert=True)


class TestSplit:
    def test_is_a_fixed_function_of_the_subject(self):
        assert [split_of(s) for s in ("000", "001", "010")] == [split_of(s) for s in ("000", "001", "010")]

    def test_keeps_a_subjects_images_together(self):
        first = Hc18Record("images/010_HC.png", "m", "010", 0.1, 100.0)
        second = Hc18Record("images/010_2HC.png", "m", "010", 0.1, 120.0)

        assert first.split == second.split

    def test_shares_are_near_70_10_20(self):
        splits = [split_of(f"{n:03d}") for n in range(2000)]

        shares = {name: splits.count(name) / len(splits) for name in ("train", "val", "test")}

        assert shares["train"] == pytest.approx(0.7, abs=0.04)
        assert shares["val"] == pytest.approx(0.1, abs=0.03)
        assert shares["test"] == pytest.approx(0.2, abs=0.03)


class TestLetterbox:
    def test_hc18_image_fills_320x216_of_320x224(self):
        assert Letterbox.of(800, 540, 320, 224) == Letterbox(0, 4, 320, 216)

    def test_grey_lands_in_the_box_and_padding_is_black(self):
        grey, box = letterbox_grey(Image.new("RGB", (800, 540), (200, 200, 200)), 320, 224)

        assert grey.shape == (224, 320)
        assert grey[: box.top].max() == 0 and grey[box.top + box.new_height :].max() == 0
        assert grey[box.top : box.top + box.new_height].min() == 200

    def test_mask_there_and_back_keeps_the_ellipse(self):
        mask = drawn_ellipse(400, 270, 180, 130, 20)
        box = Letterbox.of(800, 540, 320, 224)

        back = probabilities_on_image(letterbox_mask(mask.astype(np.uint8) * 255, 320, 224), box, (800, 540)) >= 0.5

        dice = 2 * (back & mask).sum() / (back.sum() + mask.sum())
        assert dice > 0.995


class TestFitHead:
    def test_fits_the_ellipse_and_insets_it_by_the_annotation_offset_scaled_to_the_width(self):
        probabilities = drawn_ellipse(300, 250, 150, 100, 30).astype(np.float32)

        fit = fit_head(probabilities, inset_px=1.36)

        ellipse = fit.ellipse
        assert (ellipse.cx, ellipse.cy) == pytest.approx((300, 250), abs=0.3)
        assert ellipse.semi_major == pytest.approx(150 - 1.36, abs=0.4)
        assert ellipse.semi_minor == pytest.approx(100 - 1.36, abs=0.4)
        assert math.degrees(ellipse.angle) == pytest.approx(30, abs=0.5)
        assert fit.flags == ()

    def test_inset_scales_with_the_image_width(self):
        probabilities = drawn_ellipse(150, 125, 75, 50, 0, shape=(270, 400)).astype(np.float32)

        assert fit_head(probabilities, inset_px=2.0).ellipse.semi_major == pytest.approx(75 - 1.0, abs=0.4)

    def test_keeps_the_largest_component_only(self):
        probabilities = drawn_ellipse(300, 250, 150, 100, 0).astype(np.float32)
        probabilities[20:40, 700:720] = 1.0  # a speck far away

        assert fit_head(probabilities, inset_px=0).ellipse.cx == pytest.approx(300, abs=0.3)

    def test_nothing_above_threshold_is_empty(self):
        assert fit_head(np.full((540, 800), 0.4, np.float32), inset_px=1.36).flags == ("empty",)


class TestAugment:
    def test_moves_image_and_target_together(self):
        rng = np.random.default_rng(3)
        image = (drawn_ellipse(160, 112, 80, 50, 10, shape=(224, 320)) * 255).astype(np.uint8)
        target = image.astype(np.float32) / 255

        for _ in range(5):
            view, view_target = augment(image, target, rng)
            assert view.shape == (224, 320) and view_target.shape == (224, 320)
            bright = view > view.mean()
            assert (bright == (view_target > 0.5)).mean() > 0.97


class TestHeadSegmenter:
    @pytest.mark.parametrize("runtime", ["keras", "litert"])
    def test_loads_the_cards_model_and_finds_a_head_shaped_answer(self, card_path, runtime):
        segmenter = HeadSegmenter.from_card(card_path, runtime=runtime)

        finding = segmenter.find_head(Image.new("L", (800, 540), 40))

        assert segmenter.runtime == runtime
        assert segmenter.name == "fetal-head-test-v1"
        assert finding.total_ms >= finding.inference_ms > 0

    def test_prefers_litert_when_the_card_lists_it(self, card_path):
        assert HeadSegmenter.from_card(card_path).runtime == "litert"

    @pytest.mark.parametrize("runtime", ["keras", "litert"])
    def test_flip_tta_answers_the_mirror_image_with_the_mirrored_probabilities(self, card_path, runtime):
        segmenter = HeadSegmenter.from_card(card_path, runtime=runtime)
        grey = np.random.default_rng(0).integers(0, 255, (1, 64, 96), dtype=np.uint8)

        direct = segmenter.predict_letterboxed(grey)
        mirrored = segmenter.predict_letterboxed(grey[:, :, ::-1].copy())

        np.testing.assert_allclose(mirrored, direct[:, :, ::-1], atol=1e-5)
        segmenter.flip_tta = False
        assert np.abs(segmenter.predict_letterboxed(grey) - direct).max() > 0  # the TTA changed the answer

    @pytest.mark.parametrize("runtime", ["keras", "litert"])
    def test_refuses_a_model_file_whose_sha256_differs_from_the_card(self, card_path, tmp_path, runtime):
        card = json.loads(card_path.read_text())
        for name in (card["file"], card["runtimes"]["litert"]["file"]):
            (tmp_path / name).write_bytes((card_path.parent / name).read_bytes() + b"\0")
        (tmp_path / card_path.name).write_text(json.dumps(card))

        with pytest.raises(ModelIntegrityError):
            HeadSegmenter.from_card(tmp_path / card_path.name, runtime=runtime)

    def test_refuses_a_card_that_lacks_keys(self, tmp_path):
        (tmp_path / "bad.card.json").write_text(json.dumps({"name": "x"}))

        with pytest.raises(ValueError, match="lacks"):
            HeadSegmenter.from_card(tmp_path / "bad.card.json")
