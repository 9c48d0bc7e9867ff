"""The fetal-skull segmenter: a U-Net decoder on the EfficientNet-Lite0 encoder, and the head it finds.

The model takes grey ultrasound replicated to RGB, letterboxed to ``input_width`` x ``input_height`` (HC18's
800x540 fills 320x216 of 320x224), float32 0..255; the Lite normalisation (x - 127) / 128 is a layer inside it,
as in the plane classifier. It answers the probability (N, H, W, 1) that each input pixel lies inside the skull's
outer contour. Only built-in Keras layers, so the ``.keras`` file loads with ``safe_mode=True``; the LiteRT
flatbuffer (``seg_litert``) runs the same forward pass without TensorFlow.

``HeadSegmenter.find_head`` predicts with the horizontal-flip test-time augmentation (the mean of the image's
and its mirror's probabilities), resizes the probabilities back onto the original image (bilinear), thresholds
them at 0.5, keeps the largest component, fits the ellipse at the image's own resolution and insets it by the
annotation bias of HC18's masks (``inset_px`` at 800 px of width, estimated on the training split and stored
in the card; docs/biometry.md).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from biometry.ml.ellipse import DEFAULT_MIN_AREA_PX, EllipseFit, ellipse_fit, largest_component
from classifier.ml.efficientnet_lite import LITE_MEAN, LITE_STD, lite_features

# One integrity rule for every model file: the classifier's sha256 and its error (re-exported for biometry).
from classifier.ml.inference import ModelIntegrityError, file_sha256

# The card's "task": the registry of plane classifiers (manage.py register_models) leaves such cards alone.
TASK = "head-segmentation"
RUNTIME_KERAS = "keras"
RUNTIME_LITERT = "litert"
ANNOTATION_WIDTH = 800  # HC18's image width: ``inset_px`` is in pixels of this scale
THRESHOLD = 0.5
DECODER_WIDTHS = (128, 64, 48, 32, 16)
# The Lite0 layers whose outputs the decoder takes: strides 2, 4, 8, 16 (the last block of each stage), 32.
LITE0_SKIPS = ("blocks_0_bn2", "blocks_2_add", "blocks_4_add", "blocks_10_add", "top_activation")
REQUIRED_KEYS = ("name", "version", "file", "sha256", "input_width", "input_height", "inset_px", "threshold")


@dataclass(frozen=True)
class HeadFinding:
    fit: EllipseFit  # the ellipse in image pixels, the annotation inset already applied
    inference_ms: float  # the network alone
    total_ms: float  # preprocessing + network + ellipse


# ----------------------------------------------------------------------------------------------- the network


def _decoder_block(x, skip, width: int, name: str, *, bn_momentum: float):
    import keras

    x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_up")(x)
    x = keras.layers.Concatenate(name=f"{name}_concat")([x, skip])
    for index in (1, 2):
        x = keras.layers.SeparableConv2D(width, 3, padding="same", use_bias=False, name=f"{name}_conv{index}")(x)
        x = keras.layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_bn{index}")(x)
        x = keras.layers.ReLU(name=f"{name}_relu{index}")(x)
    return x


def _lite0_skips(x):
    """The Lite0 feature maps at strides 2, 4, 8, 16 and 32 of the normalised input ``x``."""
    import keras

    top = lite_features(x, backbone="lite0")
    trunk = keras.Model(x, top)
    return [trunk.get_layer(name).output for name in LITE0_SKIPS]


def _tiny_skips(x):
    """A small plain encoder with the same five strides (tests and smoke runs: seconds to build and train)."""
    import keras

    skips = []
    for index, width in enumerate((8, 12, 16, 24, 32)):
        x = keras.layers.Conv2D(width, 3, strides=2, padding="same", name=f"tiny_conv{index}")(x)
        x = keras.layers.ReLU(name=f"tiny_relu{index}")(x)
        skips.append(x)
    return skips


def build_segmenter(
    *,
    input_width: int = 320,
    input_height: int = 224,
    encoder: str = "lite0",
    weights_path: str | Path | None = None,
    decoder_widths: tuple[int, ...] = DECODER_WIDTHS,
    full_resolution_stage: bool = True,
    frozen_blocks: int = 0,
    bn_momentum: float = 0.99,
):
    """The U-Net: encoder (``lite0`` with ImageNet weights when ``weights_path`` is given, or ``tiny``), decoder
    of upsample x2 + concat + two separable 3x3 conv + BN (``bn_momentum``) + ReLU per stride, sigmoid at the
    input's resolution (or logits at stride 2 upsampled, without ``full_resolution_stage``)."""
    import keras

    if input_width % 32 or input_height % 32:
        raise ValueError(f"input {input_width}x{input_height}: both sides must be multiples of 32")
    inputs = keras.Input((input_height, input_width, 3), name="images")
    normalised = keras.layers.Rescaling(1.0 / LITE_STD, offset=-LITE_MEAN / LITE_STD, name="normalise")(inputs)
    skips = {"lite0": _lite0_skips, "tiny": _tiny_skips}[encoder](normalised)
    x = skips[-1]
    levels = [*reversed(skips[:-1]), normalised][: len(decoder_widths) if full_resolution_stage else 4]
    for index, (skip, width) in enumerate(zip(levels, decoder_widths, strict=False)):
        x = _decoder_block(x, skip, width, f"decoder{index}", bn_momentum=bn_momentum)
    if full_resolution_stage:
        outputs = keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid", dtype="float32", name="skull")(x)
    else:  # logits at stride 2, bilinearly upsampled: the costly full-resolution stage left out
        x = keras.layers.Conv2D(1, 3, padding="same", name="skull_logits")(x)
        x = keras.layers.UpSampling2D(2, interpolation="bilinear", name="skull_up")(x)
        outputs = keras.layers.Activation("sigmoid", dtype="float32", name="skull")(x)
    model = keras.Model(inputs, outputs, name=f"fetal_head_{encoder}_unet")
    _freeze_stem_and_blocks(model, frozen_blocks)
    if weights_path is not None:
        from classifier.ml.efficientnet_lite import load_lite_weights
        from classifier.ml.torch_weights import load_state_dict

        load_lite_weights(model, load_state_dict(weights_path), include_top=False)
    return model


def _freeze_stem_and_blocks(model, count: int) -> None:
    """Freeze the Lite0 stem and its first ``count`` blocks (BN in inference mode): no backward pass through
    the high-resolution early layers, whose ImageNet features are generic edges and textures."""
    if count <= 0:
        return
    prefixes = ("conv_stem", "bn0", "stem_activation", *(f"blocks_{index}_" for index in range(count)))
    for layer in model.layers:
        if layer.name.startswith(prefixes):
            layer.trainable = False


# ------------------------------------------------------------------------------------ letterbox and back


@dataclass(frozen=True)
class Letterbox:
    """Where an image of ``width`` x ``height`` lands on the model's canvas: (left, top, new_width, new_height)."""

    left: int
    top: int
    new_width: int
    new_height: int

    @classmethod
    def of(cls, width: int, height: int, input_width: int, input_height: int) -> Letterbox:
        scale = min(input_width / width, input_height / height)
        new_width, new_height = max(1, round(width * scale)), max(1, round(height * scale))
        return cls((input_width - new_width) // 2, (input_height - new_height) // 2, new_width, new_height)


def to_grey(image: Image.Image) -> Image.Image:
    """Any Pillow image as 8-bit grey (colour overlays averaged in), the model's one channel."""
    from classifier.ml.preprocessing import to_8bit

    return to_8bit(image).convert("L")


def letterbox_grey(image: Image.Image, input_width: int, input_height: int) -> tuple[np.ndarray, Letterbox]:
    """The grey image letterboxed onto a black canvas (input_height, input_width) uint8, and where it went."""
    grey = to_grey(image)
    box = Letterbox.of(grey.width, grey.height, input_width, input_height)
    canvas = np.zeros((input_height, input_width), np.uint8)
    resized = grey.resize((box.new_width, box.new_height), Image.Resampling.BILINEAR)
    canvas[box.top : box.top + box.new_height, box.left : box.left + box.new_width] = np.asarray(resized)
    return canvas, box


def letterbox_mask(mask: np.ndarray, input_width: int, input_height: int) -> np.ndarray:
    """A mask (0/1 or 0/255) letterboxed like its image, as a soft (bilinear) target in 0..1, float32."""
    values = np.asarray(mask, np.float32)
    values = values / 255.0 if values.max() > 1 else values
    box = Letterbox.of(values.shape[1], values.shape[0], input_width, input_height)
    resized = Image.fromarray(values).resize((box.new_width, box.new_height), Image.Resampling.BILINEAR)
    canvas = np.zeros((input_height, input_width), np.float32)
    canvas[box.top : box.top + box.new_height, box.left : box.left + box.new_width] = np.clip(resized, 0, 1)
    return canvas


def to_model_input(grey: np.ndarray) -> np.ndarray:
    """Letterboxed grey (..., H, W) uint8 as the model's float32 RGB (..., H, W, 3) in 0..255."""
    return np.repeat(np.asarray(grey, np.float32)[..., np.newaxis], 3, axis=-1)


def probabilities_on_image(probabilities: np.ndarray, box: Letterbox, size: tuple[int, int]) -> np.ndarray:
    """The model's (H, W) probabilities cut out of the letterbox and resized (bilinear) to ``size`` (w, h)."""
    inside = np.ascontiguousarray(
        probabilities[box.top : box.top + box.new_height, box.left : box.left + box.new_width], np.float32
    )
    return np.asarray(Image.fromarray(inside).resize(size, Image.Resampling.BILINEAR))


def fit_head(probabilities: np.ndarray, *, inset_px: float, threshold: float = THRESHOLD) -> EllipseFit:
    """Threshold, largest component, ellipse fit at the image's resolution, annotation inset (at 800 px wide)."""
    height, width = probabilities.shape
    mask = largest_component(probabilities >= threshold)
    min_area = max(1, round(DEFAULT_MIN_AREA_PX * width * height / (ANNOTATION_WIDTH * 540)))
    fit = ellipse_fit(mask, min_area_px=min_area)
    inset = inset_px * width / ANNOTATION_WIDTH
    if fit.ellipse is None or fit.ellipse.semi_minor <= 2 * abs(inset):
        return fit
    return dataclasses.replace(fit, ellipse=fit.ellipse.inset(inset))


# ------------------------------------------------------------------------------------------------ the segmenter

# (N, H, W, 3) float32 in 0..255 -> (N, H, W) probabilities
Predict = Callable[[np.ndarray], np.ndarray]


def read_card(path: str | Path) -> dict:
    card = json.loads(Path(path).read_text())
    missing = [key for key in REQUIRED_KEYS if key not in card]
    if missing:
        raise ValueError(f"{path}: segmentation card lacks {', '.join(missing)}")
    return card


def _checked_bytes(path: Path, expected_sha256: str) -> bytes:
    content = path.read_bytes()
    actual = hashlib.sha256(content).hexdigest()
    if actual != expected_sha256:
        raise ModelIntegrityError(f"{path}: sha256 {actual} does not match the card's {expected_sha256}")
    return content


def keras_predictor(model) -> Predict:
    """A traced forward pass of a Keras segmenter (inference mode)."""
    import tensorflow as tf

    height, width = model.inputs[0].shape[1:3]
    signature = [tf.TensorSpec((None, height, width, 3), tf.float32)]
    forward = tf.function(lambda x: model(x, training=False), input_signature=signature)
    return lambda batch: np.asarray(forward(np.asarray(batch, np.float32)))[..., 0]


def load_keras_predictor(path: Path, expected_sha256: str) -> Predict:
    """Check the file's sha256, then load it with ``safe_mode=True`` (no arbitrary code, no pickle)."""
    import keras

    actual = file_sha256(path)
    if actual != expected_sha256:
        raise ModelIntegrityError(f"{path}: sha256 {actual} does not match the card's {expected_sha256}")
    return keras_predictor(keras.saving.load_model(path, safe_mode=True, compile=False))


class HeadSegmenter:
    """Finds the fetal head on an image: segmentation, flip TTA, ellipse fit and annotation inset."""

    def __init__(  # noqa: PLR0913 - what a card says about its model
        self,
        predict: Predict,
        *,
        name: str,
        sha256: str,
        runtime: str,
        input_width: int,
        input_height: int,
        inset_px: float,
        threshold: float = THRESHOLD,
        flip_tta: bool = True,
    ):
        self._predict = predict
        self.name = name
        self.sha256 = sha256
        self.runtime = runtime
        self.input_width, self.input_height = int(input_width), int(input_height)
        self.inset_px = float(inset_px)
        self.threshold = float(threshold)
        self.flip_tta = flip_tta
        self._lock = threading.Lock()

    @classmethod
    def from_card(cls, card_path: str | Path, *, runtime: str | None = None, num_threads: int = 1) -> HeadSegmenter:
        """Load the card's model: LiteRT when the card lists it (unless ``runtime`` says keras), checking the
        sha256 of the file it loads; ``ModelIntegrityError`` when it differs."""
        card_path = Path(card_path)
        card = read_card(card_path)
        litert = (card.get("runtimes") or {}).get(RUNTIME_LITERT)
        runtime = runtime or (RUNTIME_LITERT if litert else RUNTIME_KERAS)
        if runtime == RUNTIME_LITERT:
            if litert is None:
                raise ValueError(f"{card_path}: the card lists no LiteRT file")
            from biometry.ml.seg_litert import litert_predictor

            content = _checked_bytes(card_path.parent / litert["file"], litert["sha256"])
            predict, sha256 = litert_predictor(content, num_threads=num_threads), litert["sha256"]
        else:
            predict, sha256 = load_keras_predictor(card_path.parent / card["file"], card["sha256"]), card["sha256"]
        return cls(
            predict,
            name=f"{card['name']}-v{card['version']}",
            sha256=sha256,
            runtime=runtime,
            input_width=card["input_width"],
            input_height=card["input_height"],
            inset_px=card["inset_px"],
            threshold=card["threshold"],
            flip_tta=card.get("flip_tta", True),
        )

    def predict_letterboxed(self, grey: np.ndarray) -> np.ndarray:
        """Probabilities (N, H, W) for letterboxed grey images (N, H, W) uint8, with the flip TTA when on."""
        batch = to_model_input(grey)
        if not self.flip_tta:
            with self._lock:
                return self._predict(batch)
        both = np.concatenate([batch, batch[:, :, ::-1]])
        with self._lock:
            predicted = self._predict(both)
        count = len(batch)
        return (predicted[:count] + predicted[count:, :, ::-1]) / 2

    def probabilities(self, image: Image.Image) -> tuple[np.ndarray, float]:
        """The skull probability of every pixel of ``image`` (its own size) and the network's milliseconds."""
        grey, box = letterbox_grey(image, self.input_width, self.input_height)
        started = time.perf_counter()
        predicted = self.predict_letterboxed(grey[np.newaxis])[0]
        inference_ms = (time.perf_counter() - started) * 1000
        return probabilities_on_image(predicted, box, image.size), inference_ms

    def find_head(self, image: Image.Image) -> HeadFinding:
        started = time.perf_counter()
        probabilities, inference_ms = self.probabilities(image)
        fit = fit_head(probabilities, inset_px=self.inset_px, threshold=self.threshold)
        return HeadFinding(fit=fit, inference_ms=inference_ms, total_ms=(time.perf_counter() - started) * 1000)


# ---------------------------------------------------------------------------------- a small model for tests


def build_untrained_segmenter_files(
    tmp_dir: str | Path, name: str = "fetal-head-test", *, litert: bool = False, inset_px: float = 1.36
) -> Path:
    """Write a small real (untrained, tiny-encoder, 96x64) segmenter ``<name>-v1.keras`` and its card into
    ``tmp_dir`` (and its LiteRT file when ``litert``); return the card's path. For tests that need a model
    file, a card and the loading rules, not a useful segmentation."""
    import keras

    keras.utils.set_random_seed(0)
    tmp_dir = Path(tmp_dir)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    model = build_segmenter(input_width=96, input_height=64, encoder="tiny", decoder_widths=(16, 12, 8, 8, 8))
    model_path = tmp_dir / f"{name}-v1.keras"
    model.save(model_path)
    card = {
        "task": TASK,
        "name": name,
        "version": "1",
        "file": model_path.name,
        "sha256": file_sha256(model_path),
        "input_width": 96,
        "input_height": 64,
        "inset_px": inset_px,
        "threshold": THRESHOLD,
        "flip_tta": True,
        "architecture": "untrained tiny test model",
        "metrics": {},
    }
    if litert:
        from biometry.ml.seg_litert import litert_entry_for

        card["runtimes"] = {RUNTIME_LITERT: litert_entry_for(model, model_path)}
    card_path = tmp_dir / f"{name}-v1.card.json"
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    return card_path
