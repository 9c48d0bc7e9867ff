import io

import numpy as np
import pytest
from PIL import Image

from classifier.ml.inference import ModelIntegrityError, PlaneClassifier, ReviewRule, file_sha256
from classifier.ml.preprocessing import load_image, preprocess

CLASSES = ["fetal_brain", "fetal_thorax", "fetal_abdomen", "fetal_femur"]


def _gradient_image(width: int, height: int) -> Image.Image:
    x = np.linspace(0, 255, width)[None, :] * np.ones((height, 1))
    y = np.linspace(0, 255, height)[:, None] * np.ones((1, width))
    return Image.fromarray(np.stack([x, y, 255 - x], axis=-1).astype(np.uint8))


@pytest.fixture
def tiny_classifier(tiny_model_path):
    return PlaneClassifier.load(
        tiny_model_path,
        class_names=CLASSES,
        input_size=32,
        review_threshold=0.5,
        expected_sha256=file_sha256(tiny_model_path),
    )


class TestNeedsReview:
    @pytest.mark.parametrize(("confidence", "flagged"), [(0.49, True), (0.5, False), (0.97, False)])
    def test_flags_below_the_threshold_only(self, confidence, flagged):
        assert bool(ReviewRule(0.5).flags(confidence)) is flagged

    def test_result_flag_follows_the_threshold(self, tiny_model):
        scores = np.array([0.6, 0.2, 0.1, 0.1])
        strict = PlaneClassifier(tiny_model, class_names=CLASSES, input_size=32, review_threshold=0.7)
        lenient = PlaneClassifier(tiny_model, class_names=CLASSES, input_size=32, review_threshold=0.55)

        assert strict.result_from(scores, 1.0).needs_review is True
        assert lenient.result_from(scores, 1.0).needs_review is False
        assert lenient.result_from(scores, 1.0).label == "fetal_brain"


class TestPlaneClassifierLoad:
    def test_refuses_a_file_whose_sha256_differs(self, tiny_model_path):
        with pytest.raises(ModelIntegrityError):
            PlaneClassifier.load(
                tiny_model_path, class_names=CLASSES, input_size=32, review_threshold=0.5, expected_sha256="0" * 64
            )

    def test_refuses_class_names_that_do_not_fit_the_outputs(self, tiny_model):
        with pytest.raises(ValueError, match="outputs"):
            PlaneClassifier(tiny_model, class_names=CLASSES[:3], input_size=32, review_threshold=0.5)


class TestClassify:
    def test_returns_probabilities_for_every_class(self, tiny_classifier):
        result = tiny_classifier.classify(_gradient_image(50, 30))

        assert set(result.probabilities) == set(CLASSES)
        assert sum(result.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert result.confidence == max(result.probabilities.values())
        assert result.label == max(result.probabilities, key=result.probabilities.get)
        assert result.inference_ms > 0

    def test_matches_a_batch_prediction_of_the_same_preprocessing(self, tiny_classifier, tiny_model):
        image = _gradient_image(50, 30)

        result = tiny_classifier.classify(image)
        batch = np.asarray(tiny_model(preprocess(image, 32)[np.newaxis], training=False))[0]

        np.testing.assert_allclose([result.probabilities[c] for c in CLASSES], batch, rtol=1e-5, atol=1e-6)


class TestHeatmapPng:
    @pytest.mark.parametrize("size", [(60, 30), (30, 90)])
    def test_keeps_the_image_aspect_and_varies(self, tiny_classifier, size):
        image = _gradient_image(*size)

        overlay = Image.open(io.BytesIO(tiny_classifier.heatmap_png(image)))
        heat = tiny_classifier.heatmap(image)

        assert overlay.format == "PNG"
        assert overlay.size == size
        assert heat.shape == (size[1], size[0])
        assert heat.max() > heat.min()

    def test_large_images_are_scaled_down_with_their_aspect(self, tiny_classifier):
        overlay = Image.open(io.BytesIO(tiny_classifier.heatmap_png(_gradient_image(1024, 768))))

        assert overlay.size == (512, 384)

    def test_accepts_a_decoded_upload(self, tiny_classifier):
        buffer = io.BytesIO()
        _gradient_image(40, 40).convert("L").save(buffer, format="PNG")

        overlay = Image.open(io.BytesIO(tiny_classifier.heatmap_png(load_image(buffer.getvalue()))))

        assert overlay.mode == "RGB"
