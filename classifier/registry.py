"""Load the active model once per worker process, checked against its registered sha256."""

from __future__ import annotations

import threading
from pathlib import Path

from django.conf import settings

from classifier.ml.inference import PlaneClassifier
from classifier.models import ModelVersion

_cache: dict[tuple, PlaneClassifier] = {}
_lock = threading.Lock()


def model_file_path(model_version: ModelVersion) -> Path:
    path = Path(model_version.file_path)
    return path if path.is_absolute() else Path(settings.MODELS_DIR) / path


def classifier_for(model_version: ModelVersion) -> PlaneClassifier:
    """Return the loaded classifier for this version, loading it on first use."""
    # Thresholds are part of the key: re-registering a card may change them without changing the file.
    key = (
        model_version.id,
        model_version.sha256,
        model_version.file_path,
        model_version.review_threshold,
        model_version.novelty_threshold,
    )
    with _lock:
        loaded = _cache.get(key)
        if loaded is None:
            loaded = PlaneClassifier.load(
                model_file_path(model_version),
                class_names=model_version.class_labels,
                input_size=model_version.input_size,
                review_threshold=model_version.review_threshold,
                novelty_threshold=model_version.novelty_threshold,
                expected_sha256=model_version.sha256,
            )
            _cache.clear()  # one model in memory at a time
            _cache[key] = loaded
        return loaded
