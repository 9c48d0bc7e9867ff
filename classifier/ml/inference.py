"""Load a registered model safely and classify one image."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
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
    similarity: float | None = None  # to the nearest training image; None for models without that output
    runtime: str = "keras"  # what ran the model (keras, litert): recorded on every prediction


@dataclass(frozen=True)
class FrameScores:
    """What the model says about every frame of a clip, in frame order."""

    probabilities: np.ndarray  # (frames, classes) float32, in ``class_names`` order
    similarities: np.ndarray | None  # (frames,) float32 for models with a novelty output, else None
    flags: np.ndarray  # (frames,) bool: the review rule flags the frame, as it would flag the same still
    inference_ms: float  # decoding (pulling the frames), preprocessing and prediction, all frames together

    @property
    def frame_count(self) -> int:
        return len(self.flags)


# Called once per batch, before the next batch is decoded: (index of its first frame, its frames, their
# probabilities (n, classes), their flags (n,)). The frames are the decoded ones, not the preprocessed input.
BatchObserver = Callable[[int, Sequence[Image.Image], np.ndarray, np.ndarray], None]


class ModelIntegrityError(Exception):
    """The model file on disk is not the one that was registered."""


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class ReviewRule:
    """When a prediction is flagged for a person: its top probability is below ``confidence_threshold``, or
    (models with a novelty output) the image's similarity to the nearest training image is below
    ``novelty_threshold``. The worker, training and evaluation all use this one rule."""

    confidence_threshold: float
    novelty_threshold: float | None = None

    def flags(self, confidence, similarity=None) -> np.ndarray:
        flagged = np.asarray(confidence) < self.confidence_threshold
        if self.novelty_threshold is not None and similarity is not None:
            flagged = flagged | (np.asarray(similarity) < self.novelty_threshold)
        return flagged


class PlaneClassifier:
    """A Keras softmax model taking (S, S, 3) float32 in 0..255, plus its class names and review threshold.

    ``heatmap_png`` explains the last layer with a 4-D output (Grad-CAM), so any
    model with a convolutional trunk works, however small.
    """

    runtime = "keras"  # what predict_outputs runs on; recorded on every result

    def __init__(
        self,
        model,
        *,
        class_names: Sequence[str],
        input_size: int,
        review_threshold: float,
        novelty_threshold: float | None = None,
    ):
        output_units = model.outputs[0].shape[-1]
        if output_units != len(class_names):
            raise ValueError(f"the model has {output_units} outputs but {len(class_names)} class names were given")
        self.model = model
        self.class_names = list(class_names)
        self.input_size = int(input_size)
        self.review_threshold = float(review_threshold)
        self.has_novelty = len(model.outputs) > 1
        if self.has_novelty and novelty_threshold is None:
            raise ValueError("the model has a novelty output but no novelty threshold was given")
        self.review = ReviewRule(self.review_threshold, novelty_threshold if self.has_novelty else None)
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
        novelty_threshold: float | None = None,
        expected_sha256: str | None = None,
        fold: bool = True,
    ) -> PlaneClassifier:
        """Load a ``.keras`` file in safe mode; ``fold`` merges BatchNormalization into the convolutions
        in memory (same outputs up to float rounding, about 30% faster on a 2-core CPU)."""
        if expected_sha256 is not None:
            actual = file_sha256(path)
            if actual != expected_sha256:
                raise ModelIntegrityError(f"{path}: sha256 {actual} does not match the registered {expected_sha256}")
        import keras  # imported late: TensorFlow start-up is slow and not needed by every caller

        model = keras.saving.load_model(path, safe_mode=True, compile=False)
        if fold:
            from classifier.ml.fold import fold_batchnorm

            model = fold_batchnorm(model)
        if len(model.inputs) == 1:  # saved with a one-item input list: take a bare tensor without a warning
            model = keras.Model(model.inputs[0], model.outputs, name=model.name)
        return cls(
            model,
            class_names=class_names,
            input_size=input_size,
            review_threshold=review_threshold,
            novelty_threshold=novelty_threshold,
        )

    @classmethod
    def from_card(cls, card: dict, model_path: str | Path, *, fold: bool = True) -> PlaneClassifier:
        """Load the model a card describes, checking its sha256."""
        return cls.load(
            model_path,
            class_names=card["classes"],
            input_size=card["input_size"],
            review_threshold=card["needs_review_threshold"],
            novelty_threshold=card.get("novelty_threshold"),
            expected_sha256=card["sha256"],
            fold=fold,
        )

    def predict_outputs(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities (N, classes) and, with a novelty output, similarities (N,) for preprocessed images
        (N, S, S, 3) in 0..255, through one traced graph."""
        if self._predict is None:
            import tensorflow as tf

            with self._lock:
                if self._predict is None:
                    signature = [tf.TensorSpec((None, self.input_size, self.input_size, 3), tf.float32)]
                    self._predict = tf.function(lambda x: self.model(x, training=False), input_signature=signature)
        outputs = self._predict(batch.astype(np.float32))
        if self.has_novelty:
            return np.asarray(outputs[0]), np.asarray(outputs[1]).reshape(-1)
        return np.asarray(outputs), None

    def predict_batch(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities for preprocessed images (N, S, S, 3) in 0..255."""
        return self.predict_outputs(batch)[0]

    def result_from(self, scores: np.ndarray, elapsed_ms: float, similarity: float | None = None) -> ClassifierResult:
        scores = np.asarray(scores, dtype=float)
        best = int(np.argmax(scores))
        confidence = float(scores[best])
        return ClassifierResult(
            label=self.class_names[best],
            confidence=confidence,
            probabilities={name: float(score) for name, score in zip(self.class_names, scores, strict=True)},
            needs_review=bool(self.review.flags(confidence, similarity)),
            inference_ms=elapsed_ms,
            similarity=None if similarity is None else float(similarity),
            runtime=self.runtime,
        )

    def classify(self, image: Image.Image) -> ClassifierResult:
        started = time.perf_counter()
        batch = preprocess(image, self.input_size)[np.newaxis]
        scores, similarities = self.predict_outputs(batch)
        similarity = None if similarities is None else similarities[0]
        return self.result_from(scores[0], (time.perf_counter() - started) * 1000, similarity)

    def classify_batch(self, images: Sequence[Image.Image]) -> list[ClassifierResult]:
        """Several stills through one prediction (the worker's micro-batch); each result as ``classify`` gives,
        its ``inference_ms`` the batch's time shared equally."""
        if not images:
            return []
        started = time.perf_counter()
        batch = np.stack([preprocess(image, self.input_size) for image in images])
        scores, similarities = self.predict_outputs(batch)
        each_ms = (time.perf_counter() - started) * 1000 / len(images)
        return [
            self.result_from(scores[row], each_ms, None if similarities is None else similarities[row])
            for row in range(len(images))
        ]

    def classify_frames(
        self, frames: Iterable[Image.Image], *, batch_size: int = 16, on_batch: BatchObserver | None = None
    ) -> FrameScores:
        """Classify a stream of frames in batches through the same ``preprocess`` and graph as ``classify``.

        Frames are pulled from ``frames`` one at a time and at most one batch of them (decoded and
        preprocessed) is held, so a long clip needs no more memory than a short one; only the per-frame
        scores grow. ``on_batch`` sees each batch's decoded frames, so a caller can keep the few it needs
        (the key frames) without decoding the clip twice.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        started = time.perf_counter()
        inputs = np.empty((batch_size, self.input_size, self.input_size, 3), dtype=np.float32)  # reused
        probabilities: list[np.ndarray] = []
        similarities: list[np.ndarray] = []
        first = 0
        for batch in _batches(frames, batch_size):
            for row, frame in enumerate(batch):
                inputs[row] = preprocess(frame, self.input_size)
            scores, similarity = self.predict_outputs(inputs[: len(batch)])
            scores = scores.astype(np.float32)
            probabilities.append(scores)
            if similarity is not None:
                similarities.append(similarity.astype(np.float32))
            if on_batch is not None:
                on_batch(first, batch, scores, self._flags(scores, similarity))
            first += len(batch)
        scores = np.concatenate(probabilities) if probabilities else np.empty((0, len(self.class_names)), np.float32)
        similarity = (
            (np.concatenate(similarities) if similarities else np.empty(0, np.float32)) if self.has_novelty else None
        )
        return FrameScores(
            probabilities=scores,
            similarities=similarity,
            flags=self._flags(scores, similarity),
            inference_ms=(time.perf_counter() - started) * 1000,
        )

    def _flags(self, scores: np.ndarray, similarity: np.ndarray | None) -> np.ndarray:
        """The still's review rule, frame by frame: top probability (and similarity) against the thresholds."""
        confidence = scores.max(axis=1) if len(scores) else np.empty(0, np.float32)
        return np.asarray(self.review.flags(confidence, similarity), dtype=bool).reshape(-1)

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


def _batches(frames: Iterable[Image.Image], size: int) -> Iterator[list[Image.Image]]:
    """Lists of up to ``size`` frames, pulled from ``frames`` only as each list is needed."""
    batch: list[Image.Image] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
