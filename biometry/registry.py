"""The head segmentation model, loaded once per worker process from ``settings.BIOMETRY_MODEL_CARD``.

The card names the model (``segmenter_name``, each measurement job's ``model_version``) without loading it, so
queueing a job never imports TensorFlow; the worker loads the model on its first measurement (``segmenter``),
checked against the card's sha256 by ``HeadSegmenter.from_card``, and keeps it while the card path, the card
file and the runtime settings stay the same.
"""

from __future__ import annotations

import threading
from pathlib import Path

from django.conf import settings

from biometry.ml.segmentation import RUNTIME_KERAS, HeadSegmenter, read_card

_cache: dict[str, tuple[tuple, HeadSegmenter]] = {}
_lock = threading.Lock()


def card_path() -> Path:
    return Path(settings.BIOMETRY_MODEL_CARD)


def segmenter_name() -> str:
    """The configured model's name as ``HeadSegmenter.name`` gives it (``<name>-v<version>``), from the card
    alone; ``OSError`` or ``ValueError`` when the card is missing or incomplete."""
    card = read_card(card_path())
    return f"{card['name']}-v{card['version']}"


def _key() -> tuple:
    path = card_path().resolve()
    stat = path.stat()  # a card rewritten in place (a re-trained model) is loaded again
    return (str(path), stat.st_mtime_ns, stat.st_size, settings.INFERENCE_RUNTIME, settings.INFERENCE_THREADS)


def segmenter() -> HeadSegmenter:
    """The configured segmenter, loaded on first use: LiteRT when the card lists it and INFERENCE_RUNTIME is
    "litert", else Keras. ``ModelIntegrityError`` when a file differs from its card."""
    key = _key()
    with _lock:
        entry = _cache.get("segmenter")
        if entry is None or entry[0] != key:
            _cache.clear()  # one model in memory at a time
            runtime = RUNTIME_KERAS if settings.INFERENCE_RUNTIME == RUNTIME_KERAS else None
            loaded = HeadSegmenter.from_card(key[0], runtime=runtime, num_threads=settings.INFERENCE_THREADS)
            _cache["segmenter"] = (key, loaded)
        return _cache["segmenter"][1]
