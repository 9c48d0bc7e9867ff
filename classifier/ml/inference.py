"""Load a registered model safely and classify one image."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from classifier.ml.preprocessing import preprocess, to_rgb


@dataclass(frozen=True)
class ClassifierResult:
    label: str
    confidence: float
    probabilities: dict[str, float]
    needs_review: bool
    inference_ms: float


class ModelIntegrityError(Exception):
    """The model file on disk is not the one that was registered."""


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def needs_review(confidence: float, threshold: float) -> bool:
    """A prediction is flagged for a human when its top probability is below the threshold."""
    return confidence < threshold


class PlaneClassifier:
    """A Keras softmax model taking (S, S, 3) float32 in 0..255, plus its class names and review threshold.

    ``heatmap_png`` explains the last layer with a 4-D output (Grad-CAM), so any
    model with a convolutional trunk works, however small.
    """

    def __init__(self, model, *, class_names: Sequence[str], input_size: int, review_threshold: float):
        output_units = model.outputs[0].shape[-1]
        if output_units != len(class_names):
            raise ValueError(f"the model has {output_units} outputs but {len(class_names)} class names were given")
        self.model = model
        self.class_names = list(class_names)
        self.input_size = int(input_size)
        self.review_threshold = float(review_threshold)
        self._predict = None
        self._gradcam = None
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        class_names: Sequence[str],
        input_size: int,
        review_threshold: float,
        expected_sha256: str | None = None,
    ) -> PlaneClassifier:
        if expected_sha256 is not None:
            actual = file_sha256(path)
            if actual != expected_sha256:
                raise ModelIntegrityError(f"{path}: sha256 {actual} does not match the registered {expected_sha256}")
        import keras  # imported late: TensorFlow start-up is slow and not needed by every caller

        model = keras.saving.load_model(path, safe_mode=True, compile=False)
        return cls(model, class_names=class_names, input_size=input_size, review_threshold=review_threshold)

    def predict_batch(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities for preprocessed images (N, S, S, 3) in 0..255, through one traced graph."""
        if self._predict is None:
            import tensorflow as tf

            with self._lock:
                if self._predict is None:
                    signature = [tf.TensorSpec((None, self.input_size, self.input_size, 3), tf.float32)]
                    self._predict = tf.function(lambda x: self.model(x, training=False), input_signature=signature)
        return np.asarray(self._predict(batch.astype(np.float32)))

    def result_from(self, scores: np.ndarray, elapsed_ms: float) -> ClassifierResult:
        scores = np.asarray(scores, dtype=float)
        best = int(np.argmax(scores))
        confidence = float(scores[best])
        return ClassifierResult(
            label=self.class_names[best],
            confidence=confidence,
            probabilities={name: float(score) for name, score in zip(self.class_names, scores, strict=True)},
            needs_review=needs_review(confidence, self.review_threshold),
            inference_ms=elapsed_ms,
        )

    def classify(self, image: Image.Image) -> ClassifierResult:
        started = time.perf_counter()
        batch = preprocess(image, self.input_size)[np.newaxis]
        scores = self.predict_batch(batch)[0]
        return self.result_from(scores, (time.perf_counter() - started) * 1000)

    def heatmap(self, image: Image.Image) -> np.ndarray:
        """Grad-CAM of the predicted class on the image's own grid (height, width), 0..1."""
        from classifier.ml.gradcam import GradCam, heatmap

        if self._gradcam is None:
            with self._lock:
                if self._gradcam is None:
                    self._gradcam = GradCam(self.model)
        return heatmap(self._gradcam, image, self.input_size)

    def heatmap_png(self, image: Image.Image) -> bytes:
        """The Grad-CAM overlay as PNG, with the image's aspect ratio (long side at most 512 px)."""
        from classifier.ml.gradcam import overlay_png

        image = to_rgb(image)
        return overlay_png(image, self.heatmap(image))
