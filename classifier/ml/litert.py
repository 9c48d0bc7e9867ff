"""The model as a LiteRT (TensorFlow Lite) flatbuffer: export, check against Keras, and classify without TensorFlow.

The worker's hot path needs only the forward pass. The BatchNorm-folded Keras graph, converted to a float32
``.tflite`` and run by ``ai_edge_litert`` (XNNPACK kernels), gives the same outputs (max abs difference of the
probabilities about 1e-7 on the test images) in a process that never imports TensorFlow or Keras: it loads in
well under a second and holds a fraction of the memory. Keras stays for training, Grad-CAM heatmaps and as the
fallback when a card has no LiteRT file (see ``classifier.registry``).

Export needs TensorFlow (imported inside ``export_litert``); ``LiteRtPlaneClassifier`` needs only
``ai_edge_litert`` and NumPy.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from classifier.ml.inference import ModelIntegrityError, PlaneClassifier, ReviewRule, file_sha256

RUNTIME = "litert"
SIGNATURE = "serving_default"
INPUT_NAME = "images"
PROBABILITIES = "probabilities"
SIMILARITY = "similarity"


def export_litert(model, *, input_size: int) -> bytes:
    """The Keras ``model`` (fold it first) as a float32 LiteRT flatbuffer with one signature: ``images``
    (N, S, S, 3) in 0..255 with a dynamic batch, giving ``probabilities`` (N, classes) and, for models with
    a novelty output, ``similarity`` (N, 1)."""
    import keras
    import tensorflow as tf

    has_novelty = len(model.outputs) > 1

    def serve(images):
        outputs = model(images, training=False)
        if has_novelty:
            return {PROBABILITIES: outputs[0], SIMILARITY: outputs[1]}
        return {PROBABILITIES: outputs}

    # Through a SavedModel written by Keras' own exporter: it tracks Keras 3 variables so that the converter
    # freezes their values (a bare concrete function gave a flatbuffer without weights, answering NaN).
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        SIGNATURE, serve, input_signature=[tf.TensorSpec((None, input_size, input_size, 3), tf.float32, INPUT_NAME)]
    )
    with tempfile.TemporaryDirectory() as saved_model:
        archive.write_out(saved_model, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
        return converter.convert()


class LiteRtPlaneClassifier(PlaneClassifier):
    """``PlaneClassifier``'s interface (class names, input size, review rule, ``predict_outputs``, ``classify``,
    ``classify_batch``, ``classify_frames``) over a LiteRT interpreter instead of a Keras model.

    One interpreter per process, resized to each batch's size (cheap next to the prediction: the XNNPACK
    kernels run batch 1 as fast per image as larger batches). An interpreter is not thread-safe, so every
    call holds the lock. No heatmaps: Grad-CAM needs the Keras model's gradients.
    """

    runtime = RUNTIME

    def __init__(  # noqa: PLR0913 - the same arguments as PlaneClassifier, plus the interpreter's
        self,
        model_content: bytes,
        *,
        class_names: Sequence[str],
        input_size: int,
        review_threshold: float,
        novelty_threshold: float | None = None,
        num_threads: int = 1,
    ):
        from ai_edge_litert.interpreter import Interpreter

        self.model = None
        self.interpreter = Interpreter(model_content=model_content, num_threads=max(1, int(num_threads)))
        self._runner = self.interpreter.get_signature_runner(SIGNATURE)
        outputs = self.interpreter.get_signature_list()[SIGNATURE]["outputs"]
        self.has_novelty = SIMILARITY in outputs
        self._setup(class_names, input_size, review_threshold, novelty_threshold)
        self._lock = threading.Lock()
        with native_stderr_silenced():  # the first invocation is the one that prints
            probe = self.predict_outputs(np.zeros((1, self.input_size, self.input_size, 3), np.float32))[0]
        if probe.shape[-1] != len(self.class_names):
            raise ValueError(f"the model has {probe.shape[-1]} outputs but {len(self.class_names)} class names")

    def _setup(self, class_names, input_size, review_threshold, novelty_threshold) -> None:
        self.class_names = list(class_names)
        self.input_size = int(input_size)
        self.review_threshold = float(review_threshold)
        if self.has_novelty and novelty_threshold is None:
            raise ValueError("the model has a novelty output but no novelty threshold was given")
        self.review = ReviewRule(self.review_threshold, novelty_threshold if self.has_novelty else None)

    @classmethod
    def load(  # type: ignore[override]  # no ``fold``: the flatbuffer is already folded
        cls,
        path: str | Path,
        *,
        class_names: Sequence[str],
        input_size: int,
        review_threshold: float,
        novelty_threshold: float | None = None,
        expected_sha256: str | None = None,
        num_threads: int = 1,
    ) -> LiteRtPlaneClassifier:
        """Load a ``.tflite`` file, checking its sha256 on the very bytes the interpreter gets."""
        content = Path(path).read_bytes()
        if expected_sha256 is not None:
            actual = hashlib.sha256(content).hexdigest()
            if actual != expected_sha256:
                raise ModelIntegrityError(f"{path}: sha256 {actual} does not match the registered {expected_sha256}")
        return cls(
            content,
            class_names=class_names,
            input_size=input_size,
            review_threshold=review_threshold,
            novelty_threshold=novelty_threshold,
            num_threads=num_threads,
        )

    @classmethod
    def from_card(cls, card: dict, card_dir: str | Path, *, num_threads: int = 1) -> LiteRtPlaneClassifier:  # type: ignore[override]
        """Load the LiteRT file a card lists under ``runtimes.litert`` (relative to ``card_dir``)."""
        entry = litert_entry(card)
        if entry is None:
            raise ValueError(f"the card of {card['name']} v{card['version']} lists no LiteRT file")
        return cls.load(
            Path(card_dir) / entry["file"],
            class_names=card["classes"],
            input_size=card["input_size"],
            review_threshold=card["needs_review_threshold"],
            novelty_threshold=card.get("novelty_threshold"),
            expected_sha256=entry["sha256"],
            num_threads=num_threads,
        )

    def predict_outputs(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities (N, classes) and, with a novelty output, similarities (N,), as the Keras path gives."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        with self._lock:  # copied inside: nothing of one call's outputs may be shared with the next call's
            outputs = self._runner(**{INPUT_NAME: batch})  # resizes the input when N changes
            probabilities = np.array(outputs[PROBABILITIES])
            similarities = np.array(outputs[SIMILARITY]).reshape(-1) if self.has_novelty else None
        return probabilities, similarities

    def heatmap(self, image):
        raise NotImplementedError("Grad-CAM needs the Keras model: use classifier.registry.keras_classifier_for")


def litert_entry(card: dict) -> dict | None:
    """The card's ``runtimes.litert`` entry ({file, sha256, max_abs_diff_vs_keras, checked_on}), if any."""
    return (card.get("runtimes") or {}).get(RUNTIME)


def max_abs_diff(keras_classifier: PlaneClassifier, litert: LiteRtPlaneClassifier, images: np.ndarray) -> float:
    """The largest difference between the two runtimes' outputs (probabilities, and similarities where the
    model has them) on preprocessed ``images`` (N, S, S, 3), predicted in batches of 16."""
    worst = 0.0
    for start in range(0, len(images), 16):
        batch = images[start : start + 16].astype(np.float32)
        expected, expected_similarity = keras_classifier.predict_outputs(batch)
        actual, actual_similarity = litert.predict_outputs(batch)
        worst = max(worst, float(np.max(np.abs(expected - actual))))
        if expected_similarity is not None:
            worst = max(worst, float(np.max(np.abs(expected_similarity - actual_similarity))))
    return worst


def write_litert(card: dict, card_path: str | Path, images: np.ndarray, *, checked_on: str) -> dict:
    """Export the card's model (folded) next to its ``.keras`` file, check it against Keras on ``images`` and
    return the card with its ``runtimes.litert`` entry. The caller writes the card."""
    card_dir = Path(card_path).parent
    keras_classifier = PlaneClassifier.from_card(card, card_dir / card["file"])
    content = export_litert(keras_classifier.model, input_size=card["input_size"])
    tflite_name = Path(card["file"]).with_suffix(".tflite").name
    (card_dir / tflite_name).write_bytes(content)
    litert = LiteRtPlaneClassifier(
        content,
        class_names=card["classes"],
        input_size=card["input_size"],
        review_threshold=card["needs_review_threshold"],
        novelty_threshold=card.get("novelty_threshold"),
    )
    entry = {
        "file": tflite_name,
        "sha256": file_sha256(card_dir / tflite_name),
        "bytes": len(content),
        "max_abs_diff_vs_keras": max_abs_diff(keras_classifier, litert, images),
        "checked_on": checked_on,
    }
    return {**card, "runtimes": {**(card.get("runtimes") or {}), RUNTIME: entry}}


def export_card(card_path: str | Path, *, data_dir: str | Path | None) -> dict:
    """Export the model of the card at ``card_path`` to LiteRT and record it in the card (JSON, and Markdown
    where there is one).

    The check runs on the test split of ``data_dir`` (fetal and out-of-distribution images alike: both reach
    the worker) when it is there, else on 32 seeded random images, and the card says which."""
    from classifier.ml.card import read_card, write_card

    card = read_card(card_path)
    size = int(card["input_size"])
    if data_dir is not None and (Path(data_dir) / "manifest.csv").is_file():
        from classifier.ml.data import load_array, read_manifest

        records = [record for record in read_manifest(data_dir) if record.split == "test"]
        images = load_array(data_dir, records, size)
        checked_on = f"{len(records)} test images"
    else:
        images = np.random.default_rng(0).uniform(0, 255, (32, size, size, 3)).astype(np.float32)
        checked_on = "32 random images (the data set was not found)"
    card = write_litert(card, card_path, images, checked_on=checked_on)
    json_path = Path(card_path)
    md_path = json_path.with_name(json_path.name.removesuffix(".json") + ".md")
    if md_path.is_file():  # a trained model's card: its Markdown is rendered from the JSON
        write_card(card, json_path, md_path)
    else:
        json_path.write_text(json.dumps(card, indent=2) + "\n")
    return card


@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """File descriptor 2 pointed at /dev/null for the block.

    LiteRT's C++ runtime prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." straight to the process's
    stderr on an interpreter's first invocation, past Python's logging: one plain-text line in the workers' JSON
    logs. Interpreters are probed once under this when loaded, in the loading thread.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
