"""The novelty output (similarity to the nearest training image), its threshold and the one review rule."""

import numpy as np
import pytest
from PIL import Image

from classifier.ml.inference import PlaneClassifier, ReviewRule, file_sha256
from classifier.ml.metrics import novelty_threshold
from classifier.ml.model import with_novelty_output
from classifier.ml.preprocessing import preprocess

CLASSES = ["fetal_brain", "fetal_thorax", "fetal_abdomen", "fetal_femur"]


@pytest.fixture(scope="module")
def features_model():
    import keras

    keras.utils.set_random_seed(11)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(16, 3, padding="same", name="last_conv")(x)  # no ReLU: features of both signs
    features = keras.layers.GlobalAveragePooling2D(name="pooled")(x)
    outputs = keras.layers.Dense(4, activation="softmax")(features)
    return keras.Model(inputs, outputs)


def _images(seed: int, count: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (count, 40, 56, 3), dtype=np.uint8)
    return np.stack([preprocess(Image.fromarray(image), 32) for image in pixels])


def _features(model, images: np.ndarray) -> np.ndarray:
    import keras

    return np.array(keras.Model(model.inputs, model.get_layer("pooled").output)(images))


@pytest.fixture(scope="module")
def bank_images() -> np.ndarray:
    return _images(1, 5)


@pytest.fixture(scope="module")
def novelty_model(features_model, bank_images):
    return with_novelty_output(features_model, _features(features_model, bank_images), features_layer="pooled")


class TestNoveltyOutput:
    def test_is_the_cosine_similarity_to_the_nearest_bank_image(self, features_model, novelty_model, bank_images):
        queries = _images(2, 4)
        probabilities, similarity = (np.asarray(o) for o in novelty_model(queries))

        bank = _features(features_model, bank_images)
        bank /= np.linalg.norm(bank, axis=1, keepdims=True)
        query = _features(features_model, queries)
        query /= np.linalg.norm(query, axis=1, keepdims=True)
        np.testing.assert_allclose(similarity[:, 0], (query @ bank.T).max(axis=1), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(probabilities, np.asarray(features_model(queries)), rtol=1e-6, atol=1e-6)

    def test_a_training_image_is_its_own_nearest_neighbour(self, novelty_model, bank_images):
        similarity = np.asarray(novelty_model(bank_images)[1])[:, 0]
        np.testing.assert_allclose(similarity, 1.0, atol=1e-5)

    def test_saves_and_loads_in_safe_mode_with_the_same_outputs(self, novelty_model, tmp_path):
        import keras

        path = tmp_path / "novelty.keras"
        novelty_model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
        queries = _images(3, 2)
        for before, after in zip(novelty_model(queries), loaded(queries), strict=True):
            np.testing.assert_allclose(np.asarray(before), np.asarray(after), rtol=1e-6, atol=1e-6)


class TestReviewRule:
    @pytest.mark.parametrize(
        ("confidence", "similarity", "flagged"),
        [(0.9, 0.8, False), (0.5, 0.8, True), (0.9, 0.6, True), (0.5, 0.6, True), (0.7, 0.7, False)],
    )
    def test_flags_low_confidence_or_low_similarity(self, confidence, similarity, flagged):
        assert bool(ReviewRule(0.7, 0.7).flags(confidence, similarity)) is flagged

    def test_without_a_novelty_threshold_only_confidence_counts(self):
        assert not ReviewRule(0.7).flags(0.9, 0.0)
        np.testing.assert_array_equal(ReviewRule(0.7).flags(np.array([0.6, 0.8])), [True, False])


class TestClassifierWithNovelty:
    @pytest.fixture
    def saved(self, novelty_model, tmp_path):
        path = tmp_path / "novelty.keras"
        novelty_model.save(path)
        return path

    def _load(self, path, novelty):
        return PlaneClassifier.load(
            path,
            class_names=CLASSES,
            input_size=32,
            review_threshold=0.0,
            novelty_threshold=novelty,
            expected_sha256=file_sha256(path),
        )

    def test_an_unfamiliar_image_is_flagged_however_confident(self, saved):
        image = Image.fromarray(np.random.default_rng(9).integers(0, 255, (40, 56, 3), dtype=np.uint8))
        lenient, strict = self._load(saved, -1.0), self._load(saved, 1.0)

        relaxed, flagged = lenient.classify(image), strict.classify(image)

        assert -1.0 <= relaxed.similarity < 1.0
        assert relaxed.needs_review is False
        assert flagged.needs_review is True
        assert flagged.probabilities == pytest.approx(relaxed.probabilities)

    def test_refuses_a_novelty_model_without_its_threshold(self, saved):
        with pytest.raises(ValueError, match="novelty threshold"):
            self._load(saved, None)

    def test_heatmap_explains_the_class_output(self, saved):
        image = Image.fromarray(np.random.default_rng(4).integers(0, 255, (30, 60, 3), dtype=np.uint8))
        heat = self._load(saved, 0.5).heatmap(image)
        assert heat.shape == (30, 60)


class TestNoveltyThreshold:
    def test_flags_at_most_the_budget_of_validation_images(self):
        similarity = np.random.default_rng(0).uniform(0.5, 1.0, 200)
        for budget in (0.0, 0.02, 0.1):
            threshold = novelty_threshold(similarity, budget)
            assert np.mean(similarity < threshold) <= budget
            assert np.mean(similarity <= threshold) > budget  # the largest threshold within the budget

    def test_needs_validation_images(self):
        with pytest.raises(ValueError, match="no validation"):
            novelty_threshold(np.array([]), 0.02)
