"""The LiteRT export: the same outputs as the folded Keras model (the tiny models exported here, and the committed
v3 file on the real test images), the same results through the classifier's interface, and no TensorFlow in a
process that only classifies."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from classifier.ml.card import read_card, render_markdown
from classifier.ml.inference import ModelIntegrityError, PlaneClassifier
from classifier.ml.litert import (
    LiteRtPlaneClassifier,
    export_card,
    export_litert,
    litert_entry,
    max_abs_diff,
)
from tests.classifier.ml.conftest import MODELS_DIR, REPO_ROOT, read_manifest_or_skip

PROBABILITY_TOLERANCE = 1e-4
V3_CARD = MODELS_DIR / "fetal-planes-v3.card.json"
CLASSES = ["fetal_brain", "fetal_thorax", "fetal_abdomen", "fetal_femur"]


def _random_images(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_pair(tiny_model) -> tuple[PlaneClassifier, LiteRtPlaneClassifier]:
    keras_classifier = PlaneClassifier(tiny_model, class_names=CLASSES, input_size=32, review_threshold=0.3)
    litert = LiteRtPlaneClassifier(
        export_litert(tiny_model, input_size=32), class_names=CLASSES, input_size=32, review_threshold=0.3
    )
    return keras_classifier, litert


class TestExportedTinyModel:
    def test_gives_the_keras_probabilities_at_every_batch_size(self, tiny_pair):
        keras_classifier, litert = tiny_pair
        for n in (1, 3, 16, 1):  # the interpreter is resized each time, and back
            images = _random_images(n, 32, seed=n)
            expected, _ = keras_classifier.predict_outputs(images)
            actual, similarities = litert.predict_outputs(images)
            assert actual.shape == (n, 4) and similarities is None
            assert np.abs(actual - expected).max() <= PROBABILITY_TOLERANCE

    def test_classifies_like_keras_and_says_it_ran_on_litert(self, tiny_pair):
        keras_classifier, litert = tiny_pair
        stills = [Image.fromarray(image.astype(np.uint8)) for image in _random_images(5, 48, seed=3)]

        expected = keras_classifier.classify_batch(stills)
        actual = litert.classify_batch(stills)
        one = litert.classify(stills[0])
        frames = litert.classify_frames(iter(stills), batch_size=2)

        assert [r.runtime for r in actual] == ["litert"] * 5 and one.runtime == "litert"
        assert [r.label for r in actual] == [r.label for r in expected]
        assert [r.needs_review for r in actual] == [r.needs_review for r in expected]
        for got, want in zip(actual, expected, strict=True):
            assert max(abs(got.probabilities[k] - want.probabilities[k]) for k in CLASSES) <= PROBABILITY_TOLERANCE
        assert one.probabilities == pytest.approx(actual[0].probabilities, abs=1e-6)
        assert (
            frames.frame_count == 5
            and np.abs(frames.probabilities - np.array([[r.probabilities[k] for k in CLASSES] for r in actual])).max()
            <= 1e-6
        )

    def test_threads_sharing_it_each_get_their_own_batchs_outputs(self, tiny_pair):
        from concurrent.futures import ThreadPoolExecutor

        litert = tiny_pair[1]
        batches = [_random_images(n, 32, seed=10 + n) for n in (1, 2, 3, 5, 8, 13) * 4]  # sizes differ: resizes
        expected = [litert.predict_outputs(batch)[0] for batch in batches]

        with ThreadPoolExecutor(max_workers=6) as pool:
            actual = list(pool.map(lambda batch: litert.predict_outputs(batch)[0], batches))

        for got, want in zip(actual, expected, strict=True):
            assert got.shape == want.shape and np.array_equal(got, want)

    def test_has_no_heatmap(self, tiny_pair):
        with pytest.raises(NotImplementedError, match="keras_classifier_for"):
            tiny_pair[1].heatmap(Image.new("RGB", (32, 32)))


class TestExportedNoveltyModel:
    def test_keeps_the_similarity_output_and_the_review_rule(self, tiny_novelty_model_file):
        keras_classifier = PlaneClassifier.load(
            tiny_novelty_model_file, class_names=CLASSES, input_size=32, review_threshold=0.3, novelty_threshold=0.5
        )
        litert = LiteRtPlaneClassifier(
            export_litert(keras_classifier.model, input_size=32),
            class_names=CLASSES,
            input_size=32,
            review_threshold=0.3,
            novelty_threshold=0.5,
        )
        images = _random_images(6, 32, seed=5)

        expected, expected_similarity = keras_classifier.predict_outputs(images)
        actual, actual_similarity = litert.predict_outputs(images)

        assert litert.has_novelty and actual_similarity.shape == (6,)
        assert np.abs(actual - expected).max() <= PROBABILITY_TOLERANCE
        assert np.abs(actual_similarity - expected_similarity).max() <= PROBABILITY_TOLERANCE
        assert max_abs_diff(keras_classifier, litert, images) <= PROBABILITY_TOLERANCE
        with pytest.raises(ValueError, match="novelty threshold"):
            LiteRtPlaneClassifier(
                export_litert(keras_classifier.model, input_size=32),
                class_names=CLASSES,
                input_size=32,
                review_threshold=0.3,
            )


class TestExportCard:
    def test_writes_the_file_next_to_the_model_and_records_it_in_the_card(self, tiny_model_path, tmp_path):
        from tests.conftest import tiny_card

        model_path = tmp_path / tiny_model_path.name
        model_path.write_bytes(tiny_model_path.read_bytes())
        card_path = tmp_path / "tiny-v1.card.json"
        card_path.write_text(json.dumps(tiny_card(model_path, name="tiny", needs_review_threshold=0.5)))

        export_card(card_path, data_dir=tmp_path / "no-data-here")

        card = read_card(card_path)
        entry = litert_entry(card)
        assert entry["file"] == "tiny.tflite" and (tmp_path / "tiny.tflite").stat().st_size == entry["bytes"]
        assert entry["max_abs_diff_vs_keras"] <= PROBABILITY_TOLERANCE
        assert entry["checked_on"].startswith("32 random images")
        assert not (tmp_path / "tiny-v1.card.md").exists()  # an untrained test card has none to render
        loaded = LiteRtPlaneClassifier.from_card(card, tmp_path)
        assert loaded.predict_outputs(_random_images(2, 32))[0].shape == (2, 4)

    def test_a_changed_file_is_refused(self, tiny_model, tmp_path):
        path = tmp_path / "tiny.tflite"
        path.write_bytes(export_litert(tiny_model, input_size=32))

        with pytest.raises(ModelIntegrityError, match="does not match"):
            LiteRtPlaneClassifier.load(
                path, class_names=CLASSES, input_size=32, review_threshold=0.3, expected_sha256="0" * 64
            )


@pytest.fixture(scope="module")
def v3_card() -> dict:
    card = read_card(V3_CARD)
    if litert_entry(card) is None:
        pytest.fail("the committed v3 card lists no LiteRT file")
    return card


class TestCommittedV3:
    def test_card_lists_the_committed_file_and_its_check(self, v3_card):
        entry = litert_entry(v3_card)
        path = MODELS_DIR / entry["file"]
        assert path.stat().st_size == entry["bytes"]
        assert entry["max_abs_diff_vs_keras"] <= PROBABILITY_TOLERANCE
        assert (
            "LiteRT" in render_markdown(v3_card)
            and "LiteRT" in V3_CARD.with_name("fetal-planes-v3.card.md").read_text()
        )

    def test_gives_the_keras_outputs_on_the_real_test_images(self, v3_card, data_dir, committed_classifier):
        from classifier.ml.data import load_array

        records = [record for record in read_manifest_or_skip(data_dir) if record.split == "test"]
        images = load_array(data_dir, records, v3_card["input_size"])
        keras_classifier = committed_classifier(V3_CARD)
        litert = LiteRtPlaneClassifier.from_card(v3_card, MODELS_DIR)

        assert len(records) > 100
        assert max_abs_diff(keras_classifier, litert, images) <= PROBABILITY_TOLERANCE
        expected = keras_classifier.predict_outputs(images[:32].astype(np.float32))
        actual = litert.predict_outputs(images[:32].astype(np.float32))
        assert (expected[0].argmax(axis=1) == actual[0].argmax(axis=1)).all()
        flags_keras = keras_classifier.review.flags(expected[0].max(axis=1), expected[1])
        flags_litert = litert.review.flags(actual[0].max(axis=1), actual[1])
        assert (flags_keras == flags_litert).all()


NO_TENSORFLOW_SCRIPT = """
import sys, django
django.setup()
from fetalsite.celery import app
app.loader.import_default_modules()  # what a Celery worker imports at start: every app's tasks and their imports
import classifier.tasks, classifier.services, classifier.registry
from classifier.ml.card import read_card
from classifier.ml.preprocessing import load_image
from classifier.models import ModelVersion
from classifier.registry import classifier_for

card = read_card(sys.argv[1])
version = ModelVersion(id=1, name="fetal-planes", version="3", file_path=card["file"], sha256=card["sha256"],
    class_labels=card["classes"], input_size=card["input_size"], review_threshold=card["needs_review_threshold"],
    novelty_threshold=card["novelty_threshold"], card=card)
classifier = classifier_for(version)
result = classifier.classify(load_image(open(sys.argv[2], "rb").read()))
loaded = sorted(name for name in ("tensorflow", "keras", "tf_keras") if name in sys.modules)
print(result.runtime, result.label, ",".join(loaded) or "none")
"""


def test_the_worker_classifies_with_litert_without_importing_tensorflow(tmp_path):
    from tests.images import png_bytes

    image = tmp_path / "still.png"
    image.write_bytes(png_bytes(300, 200))

    done = subprocess.run(
        [sys.executable, "-c", NO_TENSORFLOW_SCRIPT, str(V3_CARD), str(image)],
        cwd=REPO_ROOT,
        env={**_environment(), "DJANGO_SETTINGS_MODULE": "fetalsite.settings.test", "INFERENCE_RUNTIME": "litert"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-2000:]
    runtime, label, loaded = done.stdout.split()[-3:]
    assert runtime == "litert" and label in CLASSES
    assert loaded == "none"


def _environment() -> dict[str, str]:
    import os

    return {key: value for key, value in os.environ.items() if key != "INFERENCE_RUNTIME"}
