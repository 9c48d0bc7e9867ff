"""Train the plane classifier reproducibly and write the model with its card.

1. Decode every image once with :func:`classifier.ml.preprocessing.preprocess`.
2. Head: features of the frozen ImageNet backbone (Lite0 by default) on several augmented views of
   each training image (computed once), a dropout + softmax head trained on them.
3. Fine-tune the backbone (BatchNorm frozen) with augmentation, class weights
   and label smoothing, once per seed from the same start (:mod:`finetune`; one
   seed by default);
   validation loss picks each member's epoch and then the weight average of the
   members ("soup") or the best member. Both phases see out-of-distribution
   images (non-fetal ultrasound from the training split, blank/noise images,
   synthetic scenes, training photographs) with a uniform target, so the model
   learns to be unsure about them.
4. Add the novelty output (similarity to the nearest training image), pick both
   needs-review thresholds on validation, evaluate on test, save the ``.keras``
   file and its card.
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
from classifier.ml.card import card_paths, newest_card, version_number, write_card
from classifier.ml.data import (
    CLASS_NAMES,
    DATASET_CITATIONS,
    Record,
    counts,
    fetal_count,
    label_indices,
    load_array,
    read_manifest,
)
from classifier.ml.efficientnet_lite import default_weights_path, weights_package
from classifier.ml.finetune import (
    FinetuneData,
    FinetuneSchedule,
    choose_soup,
    finetune_member,
    one_hot,
    uniform_targets,
)
from classifier.ml.inference import ReviewRule
from classifier.ml.model import (
    add_logit_offsets,
    build_classifier,
    feature_extractor,
    set_backbone_trainable,
    with_novelty_output,
)

MODEL_NAME = "fetal-planes"


@dataclass(frozen=True)
class TrainConfig:
    input_size: int = 256
    backbone: str = "lite0"  # or "lite2": wider and deeper, about twice the compute (docs/model.md)
    seed: int = 20261127
    batch_size: int = 16
    head_views: int = 6
    head_epochs: int = 80
    head_learning_rate: float = 1e-3
    # Members fine-tuned from the same start with seeds seed, seed + 1, ...; their weights averaged when that
    # lowers val loss. One by default: three 8-epoch members did not beat one 14-epoch run on val (docs/model.md).
    members: int = 1
    finetune_epochs: int = 14
    finetune_from_block: int = 0
    finetune_learning_rate: float = 1e-4
    patience: int = 6
    swa_start_epoch: int = 5  # average the weights of every epoch from here on (stochastic weight averaging)
    label_smoothing: float = 0.1
    dropout: float = 0.3
    outlier_weight: float = 1.0
    outliers_per_epoch: int = 96
    novelty_false_alarm: float = 0.02  # share of val fetal images the novelty check may flag
    # Added to the classifier's logits after fine-tuning (classifier.ml.offsets): fitted by crossval_classifier on
    # out-of-fold predictions of train + val, in CLASS_NAMES order. Zeros change nothing.
    class_offsets: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)
    limit_per_label: int | None = None  # smoke tests: a few images per label


def _log_default(message: str) -> None:
    print(message, flush=True)


def _class_weights(y: np.ndarray, num_classes: int) -> np.ndarray:
    present = np.bincount(y, minlength=num_classes).astype(float)
    return np.where(present > 0, len(y) / (num_classes * np.maximum(present, 1)), 0.0)


def _versions(backbone: str) -> dict[str, str]:
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    for package in ("tensorflow-cpu", "tensorflow", "keras", "numpy", "pillow", weights_package(backbone)):
        with contextlib.suppress(md.PackageNotFoundError):
            versions[package] = md.version(package)
    return versions


def _command(config: TrainConfig, data_dir, out_dir, version: str) -> str:
    """The command line that reproduces this run (options only where they differ from the defaults)."""
    defaults = TrainConfig()
    options = [
        f"--{name.replace('_', '-')} {','.join(map(str, value)) if isinstance(value, tuple) else value}"
        for name, value in asdict(config).items()
        if value != getattr(defaults, name)
    ]
    return " ".join(
        ["python manage.py train_classifier", f"--data {data_dir}", f"--out {out_dir}", f"--model-version {version}"]
        + options
    )


def next_version(out_dir: str | Path) -> str:
    """One above the highest ``fetal-planes-v<N>`` card in ``out_dir`` ("1" when there is none)."""
    newest = newest_card(out_dir, MODEL_NAME)
    return str(version_number(newest, MODEL_NAME) + 1) if newest else "1"


def _weakest_class_limit(test_metrics: dict) -> str:
    name, row = min(test_metrics["per_class"].items(), key=lambda item: item[1]["recall"])
    return (
        f"The weakest plane on test is {name} (recall {row['recall']:.3f}, n = {row['support']}): treat its "
        "predictions as suggestions to check."
    )


def limit_per_label(records: list[Record], limit: int | None) -> list[Record]:
    """The first ``limit`` rows of each split and label (smoke tests); all rows when ``limit`` is None."""
    if limit is None:
        return records
    return [
        r
        for split in ("train", "val", "test")
        for label in sorted({x.label for x in records})
        for r in [x for x in records if x.split == split and x.label == label][:limit]
    ]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class _Splits:
    """The decoded images of one run: fetal train and val images, the training outliers."""

    records: list[Record]
    train_fetal: list[Record]
    val_fetal: list[Record]
    val_other: list[Record]
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    outliers: np.ndarray


@dataclass(frozen=True)
class _Thresholds:
    """Both needs-review thresholds and the val predictions they were chosen on."""

    confidence: float
    novelty: float
    stats: dict
    val_probabilities: np.ndarray
    val_similarity: np.ndarray


def _load_splits(data_dir: str | Path, records: list[Record], size: int) -> _Splits:
    """Phase 1: decode every image the run needs once."""
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
    return _Splits(records, train_fetal, val_fetal, val_other, x_train, y_train, x_val, y_val, outliers)


def _train_head(
    model, data: _Splits, config: TrainConfig, *, augmenter: Augmenter, loss, class_weight: np.ndarray, log
) -> dict:
    """Phase 2: the dropout + softmax head on cached features of the frozen backbone (several augmented views of
    each training image); its weights go into ``model``. Returns its val summary."""
    import keras

    num_classes = len(CLASS_NAMES)
    phase_started = time.perf_counter()
    extractor = feature_extractor(model)
    x_train, y_train = data.x_train, data.y_train
    views = [x_train.astype(np.float32)] + [
        augmenter(x_train[i : i + 64].astype(np.float32))
        for _ in range(config.head_views - 1)
        for i in range(0, len(x_train), 64)
    ]
    train_features = evaluation.predict(extractor, np.concatenate(views), batch_size=64)
    outlier_features = evaluation.predict(extractor, data.outliers, batch_size=64)
    val_features = evaluation.predict(extractor, data.x_val.astype(np.float32), batch_size=64)
    head_x = np.concatenate([train_features, outlier_features])
    head_y = np.concatenate(
        [one_hot(np.tile(y_train, config.head_views), num_classes), uniform_targets(len(data.outliers), num_classes)]
    )
    head_w = np.concatenate(
        [
            class_weight[np.tile(y_train, config.head_views)],
            np.full(len(data.outliers), config.outlier_weight * config.head_views),
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
        validation_data=(val_features, one_hot(data.y_val, num_classes)),
        callbacks=[keras.callbacks.EarlyStopping(patience=10, restore_best_weights=True)],
        verbose=0,
    )
    model.get_layer("predictions").set_weights(head.layers[-1].get_weights())
    head_val = metrics.summary(data.y_val, head.predict(val_features, verbose=0).argmax(1), CLASS_NAMES)
    log(
        f"head: val accuracy {head_val['accuracy']:.3f}, macro-F1 {head_val['macro_f1']:.3f} "
        f"({time.perf_counter() - phase_started:.0f}s)"
    )
    return head_val


def _finetune(
    model, data: _Splits, config: TrainConfig, *, augmenter: Augmenter, loss, class_weight: np.ndarray, log
) -> dict:
    """Phase 3: fine-tune one member per seed from the same start, then average their weights; validation loss
    decides between the soup and the best member. Adds the class logit offsets. Returns the selection."""
    import keras

    set_backbone_trainable(model, config.finetune_from_block)
    start_weights = model.get_weights()
    member_data = FinetuneData(
        x_train=data.x_train,
        y_train=data.y_train,
        outliers=data.outliers,
        x_val=data.x_val,
        y_val=data.y_val,
        class_weight=class_weight,
    )
    schedule = FinetuneSchedule(
        epochs=config.finetune_epochs,
        batch_size=config.batch_size,
        learning_rate=config.finetune_learning_rate,
        patience=config.patience,
        swa_start_epoch=config.swa_start_epoch,
        outliers_per_epoch=config.outliers_per_epoch,
        outlier_weight=config.outlier_weight,
    )
    members = []
    for index in range(config.members):
        if index == 0:  # the first member continues the head phase's random streams, as model v1 was trained
            member_augmenter, member_rng = augmenter, np.random.default_rng(config.seed)
        else:
            keras.utils.set_random_seed(config.seed + index)
            member_augmenter, member_rng = Augmenter(config.seed + index), np.random.default_rng(config.seed + index)
        members.append(
            finetune_member(
                model,
                seed=config.seed + index,
                augmenter=member_augmenter,
                rng=member_rng,
                start_weights=start_weights,
                data=member_data,
                schedule=schedule,
                loss=loss,
                predict=evaluation.predict,
                log=log,
            )
        )
    selected = choose_soup(model, members, x_val=data.x_val, y_val=data.y_val, predict=evaluation.predict, log=log)
    log(f"selected on val: {selected['kind']} (val loss {selected['val_loss']:.4f})")
    if any(config.class_offsets):
        add_logit_offsets(model, config.class_offsets)
        log(f"class logit offsets {config.class_offsets} added to the classifier's bias")
    return selected


def _val_outliers(data_dir: str | Path, data: _Splits, size: int) -> np.ndarray:
    """The out-of-distribution images the confidence threshold is chosen on: val non-fetal ultrasound,
    blank/noise images, synthetic scenes and the val photographs (when scikit-image is there)."""
    val_ood = [load_array(data_dir, data.val_other, size).astype(np.float32)] if data.val_other else []
    val_ood.append(ood.blank_noise_batch(64, size, evaluation.OOD_SEEDS["val"])[0])
    scene_rng = np.random.default_rng(evaluation.OOD_SEEDS["val"])
    val_ood.append(np.stack([ood.synthetic_scene(size, scene_rng) for _ in range(32)]))
    with contextlib.suppress(ImportError):
        val_ood.append(ood.photo_crops(ood.VAL_PHOTOS, size, 8, evaluation.OOD_SEEDS["val"]))
    return np.concatenate(val_ood)


def _review_thresholds(model, data_dir: str | Path, data: _Splits, *, config: TrainConfig, log) -> _Thresholds:
    """Phase 4, on validation only: the novelty threshold as a fixed false-alarm budget, then the confidence
    threshold, counting what novelty already flags as flagged."""
    val_probabilities, val_similarity = evaluation.predict_outputs(model, data.x_val)
    novelty_threshold = metrics.novelty_threshold(val_similarity, config.novelty_false_alarm)
    ood_probabilities, ood_similarity = evaluation.predict_outputs(
        model, _val_outliers(data_dir, data, config.input_size)
    )
    threshold, threshold_stats = metrics.choose_threshold(
        np.where(val_similarity < novelty_threshold, 0.0, val_probabilities.max(axis=1)),
        val_probabilities.argmax(1) == data.y_val,
        np.where(ood_similarity < novelty_threshold, 0.0, ood_probabilities.max(axis=1)),
    )
    threshold_stats["novelty_flagged_val_fetal"] = float(np.mean(val_similarity < novelty_threshold))
    log(
        f"needs-review thresholds: confidence {threshold:.2f}, novelty {novelty_threshold:.3f} (val: {threshold_stats})"
    )
    return _Thresholds(threshold, novelty_threshold, threshold_stats, val_probabilities, val_similarity)


def _save_export(model, bank: np.ndarray, config: TrainConfig, model_path: Path):
    """Save a fresh, optimizer-free copy of ``model`` (with its novelty output) and return it."""
    export = with_novelty_output(
        build_classifier(
            num_classes=len(CLASS_NAMES),
            input_size=config.input_size,
            dropout=config.dropout,
            backbone=config.backbone,
        ),
        bank,
    )
    export.set_weights(model.get_weights())
    export.save(model_path)
    return export


def _evaluate(
    export, data_dir: str | Path, data: _Splits, thresholds: _Thresholds, *, input_size: int, log
) -> tuple[dict, dict]:
    """The saved model's val and test figures, fetal and out-of-distribution."""
    review = ReviewRule(thresholds.confidence, thresholds.novelty)
    val_metrics = evaluation.fetal_metrics(
        thresholds.val_probabilities,
        data.val_fetal,
        class_names=CLASS_NAMES,
        review=review,
        similarity=thresholds.val_similarity,
    )
    val_metrics["ood"] = evaluation.ood_metrics(
        export,
        data_dir=data_dir,
        records=[r for r in data.records if r.split == "val"],
        split="val",
        input_size=input_size,
        review=review,
    )
    test_metrics = evaluation.evaluate(
        export, data_dir=data_dir, split="test", input_size=input_size, review=review, records=data.records
    )
    log(
        f"test: accuracy {test_metrics['accuracy']:.3f} {test_metrics['ci']['accuracy']}, "
        f"macro-F1 {test_metrics['macro_f1']:.3f}; OOD flagged "
        + ", ".join(f"{k} {v['flagged_share']:.2f}" for k, v in test_metrics["ood"].items())
    )
    return val_metrics, test_metrics


INTENDED_USE = (
    "Decision support for trained sonographers and clinicians: it proposes which standard fetal "
    "plane (brain, thorax, abdomen, femur) an ultrasound image shows, with a heatmap and a needs-review flag. "
    "It is not a diagnosis, does not measure biometry or detect anomalies, and every result may be corrected "
    "by a person."
)
OUTPUT = (
    "softmax probabilities over the classes and the cosine similarity of the image's features to "
    "the nearest training image's; needs_review when the top probability is below needs_review_threshold "
    "or the similarity is below novelty_threshold"
)
KNOWN_LIMITS = (
    "Only four planes; any other view should come out flagged for review, but the out-of-distribution "
    "figures come from small or synthetic sets and are not a guarantee.",
    "Confidence is a softmax probability, not a calibrated clinical probability.",
    "Brain sub-planes (trans-thalamic, trans-cerebellar, trans-ventricular) are not distinguished.",
    "The novelty check compares each image with the training images only; images from machines or presets "
    "unlike any of them may be flagged more often (more review work, not less safety).",
)


def card_limits(split_counts: dict, test_metrics: dict) -> list[str]:
    """The card's limits; its image counts are those the card records (``data.counts``), so a run on a
    subset or a grown data set states its own."""
    return [
        f"Trained on {fetal_count(split_counts, 'train')} fetal images from two public data sets (Barcelona; "
        "Algeria, Egypt, Ghana, Malawi, Uganda); other machines, presets, populations and gestational ages may "
        "perform worse.",
        f"The test split is small ({fetal_count(split_counts, 'test')} fetal images): see the confidence intervals.",
        *KNOWN_LIMITS,
        _weakest_class_limit(test_metrics),
    ]


def _card_metrics(*, val_metrics: dict, test_metrics: dict, head_val: dict, threshold_stats: dict) -> dict:
    return {
        "bar": {"misses": evaluation.bar_failures(test_metrics), "thresholds": evaluation.BAR},
        "test": {k: v for k, v in test_metrics.items() if k != "ood"},
        "ood_test": test_metrics["ood"],
        "val": {k: v for k, v in val_metrics.items() if k != "ood"},
        "ood_val": val_metrics["ood"],
        "head_only_val": {"accuracy": head_val["accuracy"], "macro_f1": head_val["macro_f1"]},
        "threshold_selection_val": threshold_stats,
    }


def _architecture(config: TrainConfig) -> str:
    package = weights_package(config.backbone)
    offsets = (
        f"; class logit offsets {list(config.class_offsets)} (fitted on cross-validated out-of-fold "
        "predictions of train + val) added to its bias"
        if any(config.class_offsets)
        else ""
    )
    return (
        f"EfficientNet-{config.backbone.capitalize()} (ImageNet weights from "
        f"{package} {_versions(config.backbone).get(package, '?')}) with a dropout + dense softmax head{offsets}"
    )


def _preprocessing(size: int) -> str:
    return (
        "classifier.ml.preprocessing.preprocess: EXIF orientation, any mode to RGB, letterbox "
        f"(aspect kept, black padding) to {size}x{size}, float32 0..255; normalisation (x - 127) / 128 is a layer "
        "inside the model."
    )


def _card_data(records: list[Record]) -> dict:
    return {
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
    }


def _card_training(*, config: TrainConfig, selected: dict, seconds: dict[str, float], command: str) -> dict:
    return {
        **{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()},
        "selected": {k: v for k, v in selected.items() if k != "members"},
        "members": selected["members"],
        "wall_seconds": round(seconds["wall"], 1),
        "finetune_seconds": round(seconds["finetune"], 1),
        "command": command,
        "machine": f"{platform.machine()}, {platform.system()}",
    }


@dataclass(frozen=True)
class _Fitted:
    """The trained model (with its novelty output) and what its phases chose and measured on val."""

    model: object
    bank: np.ndarray  # pooled features of the training images, the novelty output's reference
    head_val: dict
    selected: dict
    finetune_seconds: float
    thresholds: _Thresholds


def _fit(data_dir: str | Path, data: _Splits, config: TrainConfig, *, weights_path, log) -> _Fitted:
    """Phases 2 to 4: the head, fine-tuning, the novelty output and both needs-review thresholds."""
    import keras

    class_weight = _class_weights(data.y_train, len(CLASS_NAMES))
    model = build_classifier(
        num_classes=len(CLASS_NAMES),
        input_size=config.input_size,
        weights_path=weights_path or default_weights_path(config.backbone),
        dropout=config.dropout,
        backbone=config.backbone,
    )
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
    augmenter = Augmenter(config.seed)  # the head's views and then the first member draw from it
    head_val = _train_head(model, data, config, augmenter=augmenter, loss=loss, class_weight=class_weight, log=log)
    finetune_started = time.perf_counter()
    selected = _finetune(model, data, config, augmenter=augmenter, loss=loss, class_weight=class_weight, log=log)
    finetune_seconds = time.perf_counter() - finetune_started

    # Novelty: similarity to the nearest training image.
    bank = evaluation.predict(feature_extractor(model), data.x_train.astype(np.float32), batch_size=64)
    model = with_novelty_output(model, bank)
    thresholds = _review_thresholds(model, data_dir, data, config=config, log=log)
    return _Fitted(model, bank, head_val, selected, finetune_seconds, thresholds)


def _card(
    *,
    model_path: Path,
    version: str,
    config: TrainConfig,
    records: list[Record],
    fitted: _Fitted,
    evaluated: tuple[dict, dict],
    training: dict,
) -> dict:
    """The model card: what the registry reads (file, hash, classes, thresholds) and what people need to judge
    the model (figures, intended use, limits, data, recipe)."""
    val_metrics, test_metrics = evaluated
    return {
        "name": MODEL_NAME,
        "version": str(version),
        "file": model_path.name,
        "sha256": _sha256(model_path),
        "classes": list(CLASS_NAMES),
        "input_size": config.input_size,
        "needs_review_threshold": fitted.thresholds.confidence,
        "novelty_threshold": fitted.thresholds.novelty,
        "metrics": _card_metrics(
            val_metrics=val_metrics,
            test_metrics=test_metrics,
            head_val=fitted.head_val,
            threshold_stats=fitted.thresholds.stats,
        ),
        "architecture": _architecture(config),
        "preprocessing": _preprocessing(config.input_size),
        "output": OUTPUT,
        "intended_use": INTENDED_USE,
        "limits": card_limits(counts(records), test_metrics),
        "data": _card_data(records),
        "training": training,
        "library_versions": _versions(config.backbone),
    }


def train(
    *,
    data_dir: str | Path,
    out_dir: str | Path,
    version: str = "1",
    config: TrainConfig | None = None,
    weights_path: str | Path | None = None,
    records: list[Record] | None = None,
    log: Callable[[str], None] = _log_default,
) -> dict:
    """Train, evaluate and write ``<out_dir>/fetal-planes-v<version>.{keras,card.json,card.md}``; return the card.

    ``records`` overrides the manifest's rows and their splits (cross-validation reassigns them).
    The phases run in the order the module docstring gives; the order of their random draws is part of the
    recipe (same seed, same model), so do not reorder them.
    """
    import keras
    import tensorflow as tf

    config = config or TrainConfig()
    started = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    records = limit_per_label(records if records is not None else read_manifest(data_dir), config.limit_per_label)
    data = _load_splits(data_dir, records, config.input_size)
    log(
        f"data: {len(data.train_fetal)} train, {len(data.val_fetal)} val fetal images; {len(data.outliers)} "
        f"training outliers; loaded in {time.perf_counter() - started:.0f}s"
    )
    fitted = _fit(data_dir, data, config, weights_path=weights_path, log=log)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path, json_path, md_path = card_paths(out_dir, MODEL_NAME, version)
    export = _save_export(fitted.model, fitted.bank, config, model_path)
    train_seconds = time.perf_counter() - started
    evaluated = _evaluate(export, data_dir, data, fitted.thresholds, input_size=config.input_size, log=log)
    training = _card_training(
        config=config,
        selected=fitted.selected,
        seconds={"wall": train_seconds, "finetune": fitted.finetune_seconds},
        command=_command(config, data_dir, out_dir, version),
    )
    card = _card(
        model_path=model_path,
        version=version,
        config=config,
        records=records,
        fitted=fitted,
        evaluated=evaluated,
        training=training,
    )
    write_card(card, json_path, md_path)
    log(
        f"wrote {model_path} ({model_path.stat().st_size / 1e6:.1f} MB) and its card "
        f"in {time.perf_counter() - started:.0f}s"
    )
    return card
