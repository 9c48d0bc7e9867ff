"""The key frame rule on known scores: per plane the unflagged frame labelled with it, highest confidence,
earliest on a tie; streamed batch by batch it picks the same frames as on the whole clip at once."""

import io

import numpy as np
import pytest
from PIL import Image

from classifier.ml.keyframes import KeyFrameChoice, KeyFramePicker, frame_png, key_frame_choices

CLASSES = ["fetal_brain", "fetal_thorax", "fetal_abdomen", "fetal_femur"]


def _rows(*rows):
    return np.asarray(rows, dtype=np.float32)


class TestKeyFrameChoices:
    def test_picks_the_most_confident_frame_of_each_plane(self):
        probabilities = _rows(
            [0.80, 0.10, 0.05, 0.05],
            [0.95, 0.02, 0.02, 0.01],
            [0.05, 0.05, 0.05, 0.85],
            [0.02, 0.02, 0.06, 0.90],
        )
        choices = key_frame_choices(probabilities, np.zeros(4, bool), CLASSES)

        assert [(c.label, c.frame_index) for c in choices] == [("fetal_brain", 1), ("fetal_femur", 3)]
        assert choices[0].confidence == pytest.approx(0.95)

    def test_skips_flagged_frames_even_the_most_confident(self):
        probabilities = _rows([0.99, 0.0, 0.0, 0.01], [0.90, 0.05, 0.05, 0.0])

        choices = key_frame_choices(probabilities, np.array([True, False]), CLASSES)

        assert choices == [KeyFrameChoice("fetal_brain", 1, pytest.approx(0.90))]

    def test_a_plane_with_only_flagged_frames_gets_no_key_frame(self):
        probabilities = _rows([0.90, 0.05, 0.05, 0.0], [0.10, 0.0, 0.0, 0.90])

        choices = key_frame_choices(probabilities, np.array([False, True]), CLASSES)

        assert [c.label for c in choices] == ["fetal_brain"]

    def test_a_frame_is_key_only_for_the_plane_it_is_labelled(self):
        # Every frame is brain: thorax's highest probability is no thorax picture.
        probabilities = _rows([0.90, 0.08, 0.01, 0.01], [0.97, 0.01, 0.01, 0.01])

        choices = key_frame_choices(probabilities, np.zeros(2, bool), CLASSES)

        assert [c.label for c in choices] == ["fetal_brain"]

    def test_a_tie_goes_to_the_earliest_frame(self):
        probabilities = _rows([0.5, 0.5, 0, 0], [0.9, 0.1, 0, 0], [0.9, 0.1, 0, 0])

        assert key_frame_choices(probabilities, np.zeros(3, bool), CLASSES)[0].frame_index == 1

    def test_an_empty_clip_has_no_key_frames(self):
        assert key_frame_choices(np.empty((0, 4), np.float32), np.empty(0, bool), CLASSES) == []


def _frame(index: int) -> Image.Image:
    return Image.fromarray(np.full((6, 8), index, dtype=np.uint8))


class TestKeyFramePicker:
    @pytest.mark.parametrize("batch_size", [1, 3, 7, 64])
    def test_streamed_in_batches_it_picks_what_the_whole_clip_rule_picks(self, batch_size):
        rng = np.random.default_rng(batch_size)
        # Quantised scores make ties across batches likely, the case where streaming could go wrong.
        probabilities = rng.dirichlet(np.full(4, 0.3), size=50).round(1).astype(np.float32)
        flags = probabilities.max(axis=1) < 0.6
        picker = KeyFramePicker(CLASSES)

        for first in range(0, 50, batch_size):
            rows = slice(first, first + batch_size)
            frames = [_frame(i) for i in range(first, min(first + batch_size, 50))]
            picker.offer_batch(first, frames, probabilities[rows], flags[rows])
            assert picker.held_frames <= len(CLASSES)

        expected = key_frame_choices(probabilities, flags, CLASSES)
        key_frames = picker.key_frames()
        assert [(k.label, k.frame_index, k.confidence) for k in key_frames] == [
            (c.label, c.frame_index, c.confidence) for c in expected
        ]
        for key_frame in key_frames:  # the picture kept is the frame chosen, not a neighbour
            with Image.open(io.BytesIO(key_frame.png)) as image:
                assert image.getpixel((0, 0)) == key_frame.frame_index


class TestFramePng:
    def test_encodes_grey_as_grey_without_the_decoders_metadata(self):
        frame = _frame(7)
        frame.info["comment"] = b"from the decoder"

        with Image.open(io.BytesIO(frame_png(frame))) as image:
            assert (image.format, image.mode, image.size) == ("PNG", "L", (8, 6))
            assert "comment" not in image.info
