"""The segmenter as a LiteRT flatbuffer: export (needs TensorFlow) and a forward pass without it.

The same route as the plane classifier's (``classifier.ml.litert``): Keras' own ``ExportArchive`` writes a
SavedModel whose variables the converter freezes, then a float32 ``.tflite`` with one signature, ``images``
(N, H, W, 3) in 0..255 with a dynamic batch, giving ``probabilities`` (N, H, W, 1). The converter folds
BatchNormalization into the convolutions. Running it needs only ``ai_edge_litert`` and NumPy.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import numpy as np

from classifier.ml.litert import native_stderr_silenced

SIGNATURE = "serving_default"
INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"


def export_litert(model) -> bytes:
    """The Keras segmenter as a float32 LiteRT flatbuffer (dynamic batch, the model's own height and width)."""
    import keras
    import tensorflow as tf

    height, width = model.inputs[0].shape[1:3]

    def serve(images):
        return {OUTPUT_NAME: model(images, training=False)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        SIGNATURE, serve, input_signature=[tf.TensorSpec((None, height, width, 3), tf.float32, INPUT_NAME)]
    )
    with tempfile.TemporaryDirectory() as saved_model:
        archive.write_out(saved_model, verbose=False)
        return tf.lite.TFLiteConverter.from_saved_model(saved_model).convert()


def litert_predictor(content: bytes, *, num_threads: int = 1):
    """(N, H, W, 3) float32 -> (N, H, W) probabilities through one LiteRT interpreter (calls serialised)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content, num_threads=max(1, int(num_threads)))
    runner = interpreter.get_signature_runner(SIGNATURE)
    lock = threading.Lock()

    def predict(batch: np.ndarray) -> np.ndarray:
        with lock:  # copied inside: an interpreter's output buffers are reused by its next call
            return np.array(runner(**{INPUT_NAME: np.ascontiguousarray(batch, np.float32)})[OUTPUT_NAME])[..., 0]

    with native_stderr_silenced():  # the first invocation prints a plain-text line past the JSON logs
        predict(np.zeros(runner.get_input_details()[INPUT_NAME]["shape"], np.float32))
    return predict


def litert_entry_for(model, model_path: str | Path, *, images: np.ndarray | None = None, checked_on: str = "") -> dict:
    """Export ``model`` to ``<model_path>.tflite``, check it against Keras on ``images`` (default: 4 seeded
    random images) and return the card's ``runtimes.litert`` entry."""
    from biometry.ml.segmentation import file_sha256, keras_predictor

    content = export_litert(model)
    tflite_path = Path(model_path).with_suffix(".tflite")
    tflite_path.write_bytes(content)
    if images is None:
        height, width = model.inputs[0].shape[1:3]
        images = np.random.default_rng(0).uniform(0, 255, (4, height, width, 3)).astype(np.float32)
        checked_on = "4 seeded random images"
    expected, actual = keras_predictor(model), litert_predictor(content)
    worst = 0.0
    for start in range(0, len(images), 8):
        batch = images[start : start + 8]
        worst = max(worst, float(np.max(np.abs(expected(batch) - actual(batch)))))
    return {
        "file": tflite_path.name,
        "sha256": file_sha256(tflite_path),
        "bytes": len(content),
        "max_abs_diff_vs_keras": worst,
        "checked_on": checked_on,
    }
