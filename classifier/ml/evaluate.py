"""Evaluate a classifier on one split: fetal metrics with CIs, per source, and out-of-distribution shares."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from classifier.ml import metrics, ood
from classifier.ml.data import CLASS_NAMES, Record, label_indices, load_array, read_manifest
from classifier.ml.inference import ReviewRule

# Seeds of the synthetic out-of-distribution images: training, validation and test never share one.
OOD_SEEDS = {"train": 101, "val": 202, "test": 303}


def predict_outputs(model, images: np.ndarray, *, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray | None]:
    """Class probabilities (N, classes) for preprocessed images (0..255) and, for a model with a novelty
    output, the similarity of each to the nearest training image (N,)."""
    probabilities, similarities = [], []
    for start in range(0, len(images), batch_size):
        outputs = model(images[start : start + batch_size].astype(np.float32), training=False)
        if isinstance(outputs, list | tuple):
            probabilities.append(np.asarray(outputs[0]))
            similarities.append(np.asarray(outputs[1]).reshape(-1))
        else:
            probabilities.append(np.asarray(outputs))
    if not probabilities:
        empty = np.zeros((0, len(CLASS_NAMES)), dtype=np.float32)
        return empty, (np.zeros(0, dtype=np.float32) if len(model.outputs) > 1 else None)
    return np.concatenate(probabilities), (np.concatenate(similarities) if similarities else None)


def predict(model, images: np.ndarray, *, batch_size: int = 32) -> np.ndarray:
    """Class probabilities for a batch of preprocessed images (0..255)."""
    return predict_outputs(model, images, batch_size=batch_size)[0]


def fetal_metrics(
    probabilities: np.ndarray,
    records: Sequence[Record],
    *,
    class_names: Sequence[str],
    review: ReviewRule,
    similarity: np.ndarray | None = None,
    with_ci: bool = True,
) -> dict:
    y_true = label_indices(list(records))
    y_pred = probabilities.argmax(axis=1)
    result = metrics.summary(y_true, y_pred, class_names)
    if with_ci and len(records):
        result["ci"] = metrics.bootstrap_ci(y_true, y_pred, [r.group for r in records], len(class_names))
    result["per_source"] = {}
    for source in sorted({r.source for r in records}):
        mask = np.array([r.source == source for r in records])
        block = metrics.summary(y_true[mask], y_pred[mask], class_names)
        if with_ci:
            groups = [r.group for r, m in zip(records, mask, strict=False) if m]
            block["ci"] = metrics.bootstrap_ci(y_true[mask], y_pred[mask], groups, len(class_names))
        result["per_source"][source] = block
    accepted = ~review.flags(probabilities.max(axis=1), similarity)
    result["selective"] = {
        "flagged_share": float(np.mean(~accepted)) if len(records) else 0.0,
        "accuracy_accepted": float(np.mean(y_true[accepted] == y_pred[accepted])) if accepted.any() else 0.0,
        "wrong_flagged_share": float(np.mean(~accepted[y_true != y_pred])) if (y_true != y_pred).any() else None,
    }
    return result


def _flagged(model, images: np.ndarray, review: ReviewRule) -> dict:
    probabilities, similarity = predict_outputs(model, images)
    confidence = probabilities.max(axis=1)
    block = {
        "n": int(len(images)),
        "flagged_share": float(np.mean(review.flags(confidence, similarity))) if len(images) else 0.0,
        "flagged_by_confidence_share": float(np.mean(confidence < review.confidence_threshold)) if len(images) else 0.0,
        "median_confidence": float(np.median(confidence)) if len(images) else 0.0,
    }
    if similarity is not None and len(images):
        block["median_similarity"] = float(np.median(similarity))
    return block


def ood_metrics(
    model, *, data_dir: str | Path, records: Sequence[Record], split: str, input_size: int, review: ReviewRule
) -> dict:
    """Share flagged for review on non-fetal ultrasound, photographs (held out) and blank/noise images."""
    result = {}
    non_fetal = [r for r in records if not r.is_fetal]
    if non_fetal:
        result["non_fetal_ultrasound"] = _flagged(model, load_array(data_dir, non_fetal, input_size), review)
        for label in sorted({r.label for r in non_fetal}):
            chosen = [r for r in non_fetal if r.label == label]
            result[f"ultrasound_{label}"] = _flagged(model, load_array(data_dir, chosen, input_size), review)
    seed = OOD_SEEDS[split]
    blank, kinds = ood.blank_noise_batch(64, input_size, seed)
    result["blank_noise"] = _flagged(model, blank, review)
    if split == "test":
        try:
            photos = ood.photo_crops(ood.EVAL_PHOTOS, input_size, 0, seed)
            crops = ood.photo_crops(ood.EVAL_PHOTOS, input_size, 4, seed)
        except ImportError:
            photos = crops = None
        if photos is not None:
            result["photographs"] = _flagged(model, photos, review)
            result["photograph_crops"] = _flagged(model, crops, review)
    else:
        rng = np.random.default_rng(seed)
        scenes = np.stack([ood.synthetic_scene(input_size, rng) for _ in range(32)])
        result["synthetic_scenes"] = _flagged(model, scenes, review)
        with contextlib.suppress(ImportError):
            result["photographs"] = _flagged(model, ood.photo_crops(ood.VAL_PHOTOS, input_size, 8, seed), review)
    return result


def evaluate(
    model,
    *,
    data_dir: str | Path,
    split: str = "test",
    class_names: Sequence[str] = CLASS_NAMES,
    input_size: int,
    review: ReviewRule,
    records: Sequence[Record] | None = None,
    limit: int | None = None,
) -> dict:
    """Metrics of ``model`` on ``split`` of the manifest (``limit`` images per label, for smoke tests)."""
    records = [r for r in (records or read_manifest(data_dir)) if r.split == split]
    if limit is not None:
        records = [
            r for label in sorted({r.label for r in records}) for r in [x for x in records if x.label == label][:limit]
        ]
    fetal = [r for r in records if r.is_fetal]
    probabilities, similarity = predict_outputs(model, load_array(data_dir, fetal, input_size))
    result = fetal_metrics(probabilities, fetal, class_names=class_names, review=review, similarity=similarity)
    result["ood"] = ood_metrics(
        model, data_dir=data_dir, records=records, split=split, input_size=input_size, review=review
    )
    return result


def evaluate_card(
    card_path: str | Path, *, data_dir: str | Path, split: str = "test", limit: int | None = None
) -> dict:
    """Load the model a card describes (checking its sha256) and evaluate it."""
    from classifier.ml.card import read_card
    from classifier.ml.inference import PlaneClassifier

    card = read_card(card_path)
    classifier = PlaneClassifier.from_card(card, Path(card_path).parent / card["file"])
    return evaluate(
        classifier.model,
        data_dir=data_dir,
        split=split,
        class_names=card["classes"],
        input_size=card["input_size"],
        review=classifier.review,
        limit=limit,
    )


BAR = {"accuracy": 0.95, "macro_f1": 0.94, "recall": 0.90, "ood_flagged": 0.90}


def bar_shortfalls(result: dict) -> list[tuple[str, float, float]]:
    """Each figure of the bar of the model issue that ``result`` falls short of, as (item, value, required)."""
    shortfalls = []
    blocks = {"all": result, **{f"source {name}": block for name, block in result.get("per_source", {}).items()}}
    for name, block in blocks.items():
        if block["accuracy"] < BAR["accuracy"]:
            shortfalls.append((f"{name}: accuracy", block["accuracy"], BAR["accuracy"]))
        if block["macro_f1"] < BAR["macro_f1"]:
            shortfalls.append((f"{name}: macro-F1", block["macro_f1"], BAR["macro_f1"]))
        for label, row in block["per_class"].items():
            if row["support"] and row["recall"] < BAR["recall"]:
                shortfalls.append((f"{name}: {label} recall", row["recall"], BAR["recall"]))
    for kind in ("photographs", "blank_noise"):
        block = result.get("ood", {}).get(kind)
        if block and block["flagged_share"] < BAR["ood_flagged"]:
            shortfalls.append((f"{kind}: flagged share", block["flagged_share"], BAR["ood_flagged"]))
    return shortfalls


def bar_failures(result: dict) -> list[str]:
    """What falls short of the bar of the model issue, in words (empty when it is met)."""
    return [f"{item} {value:.3f} < {required}" for item, value, required in bar_shortfalls(result)]


def format_report(result: dict) -> str:
    lines = [f"fetal images: {result['n']}, accuracy {result['accuracy']:.3f}, macro-F1 {result['macro_f1']:.3f}"]
    if "ci" in result:
        ci = result["ci"]
        lines.append(
            f"  95% CI accuracy {ci['accuracy'][0]:.3f}-{ci['accuracy'][1]:.3f}, "
            f"macro-F1 {ci['macro_f1'][0]:.3f}-{ci['macro_f1'][1]:.3f} ({ci['method']})"
        )
    for label, row in result["per_class"].items():
        lines.append(
            f"  {label:14s} precision {row['precision']:.3f} recall {row['recall']:.3f} f1 {row['f1']:.3f} "
            f"n {row['support']}"
        )
    for source, block in result.get("per_source", {}).items():
        recalls = ", ".join(f"{k} {v['recall']:.2f}" for k, v in block["per_class"].items() if v["support"])
        lines.append(
            f"  source {source}: n {block['n']}, accuracy {block['accuracy']:.3f}, "
            f"macro-F1 {block['macro_f1']:.3f}; recall {recalls}"
        )
    lines.append(f"  confusion matrix (rows true): {result['confusion_matrix']}")
    selective = result.get("selective", {})
    if selective:
        lines.append(
            f"  fetal flagged for review {selective['flagged_share']:.3f}, "
            f"accuracy when not flagged {selective['accuracy_accepted']:.3f}"
        )
    for kind, block in result.get("ood", {}).items():
        lines.append(f"  OOD {kind}: n {block['n']}, flagged {block['flagged_share']:.3f}")
    return "\n".join(lines)
