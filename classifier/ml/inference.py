"""Load a registered model safely and classify one image."""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from classifier.ml.preprocessing import preprocess


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


class PlaneClassifier:
    def __init__(self, model, *, class_names: Sequence[str], input_size: int, review_threshold: float):
        self.model = model
        self.class_names = list(class_names)
        self.input_size = input_size
        self.review_threshold = review_threshold

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

    def classify(self, image: Image.Image) -> ClassifierResult:
        started = time.perf_counter()
        batch = preprocess(image, self.input_size)[np.newaxis]
        scores = np.asarray(self.model(batch, training=False))[0].astype(float)
        elapsed_ms = (time.perf_counter() - started) * 1000
        best = int(np.argmax(scores))
        confidence = float(scores[best])
        return ClassifierResult(
            label=self.class_names[best],
            confidence=confidence,
            probabilities={name: float(score) for name, score in zip(self.class_names, scores, strict=False)},
            needs_review=confidence < self.review_threshold,
            inference_ms=elapsed_ms,
        )

    def heatmap_png(self, image: Image.Image) -> bytes:
        """Placeholder overlay until Grad-CAM lands: the image itself, as PNG."""
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="PNG")
        return buffer.getvalue()
