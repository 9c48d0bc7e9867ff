"""Frames classified in batches by the committed model: the same answers as each frame classified as a still,
pulled from the stream one batch at a time, and key frames from the planes the frames really show."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from classifier.ml.card import newest_card
from classifier.ml.inference import PlaneClassifier
from classifier.ml.keyframes import KeyFramePicker
from classifier.ml.preprocessing import load_image
from tests.classifier.ml.conftest import read_manifest_or_skip

MODELS_DIR = Path(__file__).resolve().parents[3] / "models"
PER_PLANE = 5  # frames of each plane: a brain sweep, then a femur sweep


@pytest.fixture(scope="module")
def classifier(committed_classifier) -> PlaneClassifier:
    card_path = newest_card(MODELS_DIR)
    if card_path is None:
        pytest.skip("no committed model in models/")
    return committed_classifier(card_path)


@pytest.fixture(scope="module")
def sweep(data_dir) -> list[tuple[str, Image.Image]]:
    """Test-split brain images, then femur images, each a few pixels shifted from the last: a probe moving."""
    records = [r for r in read_manifest_or_skip(data_dir) if r.split == "test"]
    frames = []
    for label in ("fetal_brain", "fetal_femur"):
        for step, record in enumerate([r for r in records if r.label == label][:PER_PLANE]):
            image = load_image((data_dir / record.file).read_bytes()).convert("L")
            shifted = np.roll(np.asarray(image), shift=(2 * step, 3 * step), axis=(0, 1))
            frames.append((label, Image.fromarray(shifted)))
    return frames


def _stream(frames: list[Image.Image], pulled: list[int]) -> Iterator[Image.Image]:
    for frame in frames:
        pulled[0] += 1
        yield frame


class TestClassifyFrames:
    def test_matches_each_frame_classified_as_a_still(self, classifier, sweep):
        frames = [frame for _, frame in sweep]

        scores = classifier.classify_frames(iter(frames), batch_size=4)

        assert scores.probabilities.shape == (len(frames), 4) and scores.probabilities.dtype == np.float32
        assert scores.frame_count == len(frames) and scores.inference_ms > 0
        for index, frame in enumerate(frames):
            still = classifier.classify(frame)
            row = scores.probabilities[index]
            assert row == pytest.approx([still.probabilities[name] for name in classifier.class_names], abs=1e-4)
            assert bool(scores.flags[index]) is still.needs_review
            if still.similarity is not None:
                assert scores.similarities[index] == pytest.approx(still.similarity, abs=1e-4)

    def test_labels_every_frame_with_the_plane_it_shows(self, classifier, sweep):
        scores = classifier.classify_frames((frame for _, frame in sweep), batch_size=16)

        labels = [classifier.class_names[i] for i in scores.probabilities.argmax(axis=1)]
        assert labels == [label for label, _ in sweep]

    def test_pulls_frames_one_batch_at_a_time(self, classifier, sweep):
        frames, pulled, seen = [frame for _, frame in sweep], [0], []

        def on_batch(first, batch, probabilities, flags):
            # When a batch is predicted, nothing beyond it has been decoded yet.
            seen.append((first, len(batch), pulled[0], probabilities.shape, flags.shape))

        classifier.classify_frames(_stream(frames, pulled), batch_size=4, on_batch=on_batch)

        assert seen == [
            (0, 4, 4, (4, 4), (4,)),
            (4, 4, 8, (4, 4), (4,)),
            (8, 2, 10, (2, 4), (2,)),
        ]

    def test_an_empty_stream_has_no_frames(self, classifier):
        scores = classifier.classify_frames(iter([]))

        assert scores.probabilities.shape == (0, 4) and scores.flags.shape == (0,)

    def test_refuses_a_batch_size_below_one(self, classifier):
        with pytest.raises(ValueError, match="batch_size"):
            classifier.classify_frames(iter([]), batch_size=0)


class TestKeyFramesWhileStreaming:
    def test_one_key_frame_per_plane_shown_inside_its_sweep(self, classifier, sweep):
        picker = KeyFramePicker(classifier.class_names)

        scores = classifier.classify_frames((frame for _, frame in sweep), batch_size=3, on_batch=picker.offer_batch)
        key_frames = picker.key_frames()

        sweep_of = {k.label: sweep[k.frame_index][0] for k in key_frames}
        assert sweep_of == {"fetal_brain": "fetal_brain", "fetal_femur": "fetal_femur"}
        for key_frame in key_frames:
            assert not scores.flags[key_frame.frame_index]
            assert key_frame.confidence == pytest.approx(float(scores.probabilities[key_frame.frame_index].max()))
            # The still made from the PNG is that frame, pixel for pixel, and the model says the same of it.
            frame = sweep[key_frame.frame_index][1]
            still = load_image(key_frame.png)
            assert np.array_equal(np.asarray(still.convert("L")), np.asarray(frame))
            assert classifier.classify(still).label == key_frame.label
