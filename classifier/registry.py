"""Load the active model once per worker process, checked against its registered sha256.

Two loaders: ``classifier_for`` (what classifies: the card's LiteRT file when INFERENCE_RUNTIME is "litert" and
the card lists one, so the worker's process never imports TensorFlow; else Keras) and ``keras_classifier_for``
(the Keras model, which Grad-CAM heatmaps need). Each keeps one model version in memory.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from django.conf import settings

from classifier.ml.inference import ModelIntegrityError, PlaneClassifier
from classifier.models import ModelVersion

logger = logging.getLogger(__name__)

# {"classify" or "keras": (key, classifier)}, both of one model version: a worker that also makes heatmaps holds at
# most the LiteRT and the Keras copy of the active model, and one Keras copy when it classifies with Keras.
_cache: dict[str, tuple[tuple, PlaneClassifier]] = {}
_lock = threading.RLock()  # re-entered: the classify slot's loader may fill the Keras slot
_tensorflow_threads_set = False


def model_file_path(model_version: ModelVersion) -> Path:
    path = Path(model_version.file_path)
    return path if path.is_absolute() else Path(settings.MODELS_DIR) / path


def _key(model_version: ModelVersion) -> tuple:
    # Thresholds and card are part of the key: re-registering a card may change them without changing the file.
    return (
        model_version.id,
        model_version.sha256,
        model_version.file_path,
        model_version.review_threshold,
        model_version.novelty_threshold,
        repr((model_version.card or {}).get("runtimes")),
        settings.INFERENCE_RUNTIME,
        settings.INFERENCE_THREADS,
    )


def _cached(slot: str, model_version: ModelVersion, load) -> PlaneClassifier:
    global _cache
    key = _key(model_version)
    with _lock:
        entry = _cache.get(slot)
        if entry is None or entry[0] != key:
            # Another version's models go before this one loads: one version in memory at a time.
            _cache = {name: kept for name, kept in _cache.items() if name != slot and kept[0][:5] == key[:5]}
            _cache[slot] = (key, load(model_version))
        return _cache[slot][1]


def classifier_for(model_version: ModelVersion) -> PlaneClassifier:
    """The classifier the worker predicts with, loaded on first use: LiteRT or Keras (see INFERENCE_RUNTIME);
    its ``runtime`` is recorded on every prediction."""
    return _cached("classify", model_version, _load_selected)


def keras_classifier_for(model_version: ModelVersion) -> PlaneClassifier:
    """The Keras classifier of this version (BatchNorm folded), for Grad-CAM heatmaps."""
    return _cached("keras", model_version, _load_keras)


def _load_selected(model_version: ModelVersion) -> PlaneClassifier:
    """LiteRT when asked for and listed in the card; a missing or altered file is logged and Keras used."""
    from classifier.ml.litert import LiteRtPlaneClassifier, litert_entry

    entry = litert_entry(model_version.card or {})
    if settings.INFERENCE_RUNTIME != "litert" or entry is None:
        return keras_classifier_for(model_version)  # one Keras copy for predictions and heatmaps
    path = model_file_path(model_version).parent / entry["file"]
    try:
        return LiteRtPlaneClassifier.load(
            path,
            class_names=model_version.class_labels,
            input_size=model_version.input_size,
            review_threshold=model_version.review_threshold,
            novelty_threshold=model_version.novelty_threshold,
            expected_sha256=entry["sha256"],
            num_threads=settings.INFERENCE_THREADS,
        )
    except (OSError, ModelIntegrityError, ValueError, ImportError) as error:
        logger.error("LiteRT model of %s not usable (%s); classifying with Keras instead", model_version, error)
        return keras_classifier_for(model_version)


def _load_keras(model_version: ModelVersion) -> PlaneClassifier:
    _size_tensorflow_threads(settings.INFERENCE_THREADS)
    return PlaneClassifier.load(
        model_file_path(model_version),
        class_names=model_version.class_labels,
        input_size=model_version.input_size,
        review_threshold=model_version.review_threshold,
        novelty_threshold=model_version.novelty_threshold,
        expected_sha256=model_version.sha256,
    )


def _size_tensorflow_threads(threads: int) -> None:
    """TensorFlow's pools sized to the worker's share of the cores, before its first op: by default each process
    would take every core, and two prefork processes on two cores would fight over them."""
    global _tensorflow_threads_set
    if _tensorflow_threads_set:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already ran an op in this process (a test, a training command): keep its pools
        logger.info("TensorFlow's thread pools were set already; left as they are")
    _tensorflow_threads_set = True
