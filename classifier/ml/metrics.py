"""Classification metrics, bootstrap confidence intervals and the needs-review threshold."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def per_class(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tp = np.diag(matrix).astype(float)
    predicted, actual = matrix.sum(axis=0), matrix.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(tp), where=denominator > 0)
    return precision, recall, f1


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    return float(per_class(confusion_matrix(y_true, y_pred, num_classes))[2].mean())


def summary(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix."""
    matrix = confusion_matrix(y_true, y_pred, len(class_names))
    precision, recall, f1 = per_class(matrix)
    return {
        "n": int(len(y_true)),
        "accuracy": float(np.mean(y_true == y_pred)) if len(y_true) else 0.0,
        "macro_f1": float(f1.mean()),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(matrix[i].sum()),
            }
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": matrix.tolist(),
    }


def bootstrap_ci(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    groups: Sequence[str],
    num_classes: int,
    *,
    rounds: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, list[float]]:
    """Percentile CI of accuracy and macro-F1, resampling patients (groups), not images."""
    rng = np.random.default_rng(seed)
    group_ids = np.unique(np.asarray(groups), return_inverse=True)[1]
    members = [np.flatnonzero(group_ids == g) for g in range(group_ids.max() + 1)]
    accuracies, f1s = [], []
    for _ in range(rounds):
        chosen = np.concatenate([members[g] for g in rng.integers(0, len(members), len(members))])
        accuracies.append(np.mean(y_true[chosen] == y_pred[chosen]))
        f1s.append(macro_f1(y_true[chosen], y_pred[chosen], num_classes))
    tail = (1 - level) / 2 * 100
    return {
        "level": level,
        "accuracy": [float(np.percentile(accuracies, tail)), float(np.percentile(accuracies, 100 - tail))],
        "macro_f1": [float(np.percentile(f1s, tail)), float(np.percentile(f1s, 100 - tail))],
        "method": f"percentile bootstrap over patients, {rounds} rounds",
    }


def choose_threshold(
    confidence_in: np.ndarray,
    correct_in: np.ndarray,
    confidence_out: np.ndarray,
    *,
    candidates: np.ndarray | None = None,
) -> tuple[float, dict]:
    """Pick the needs-review threshold on validation data.

    Below the threshold a prediction is flagged. The cost adds three shares:
    correct fetal predictions flagged (lost automation, weight 1), wrong fetal
    predictions not flagged (weight 0.5) and out-of-distribution images not
    flagged (weight 1). Ties go to the lowest threshold.
    """
    if candidates is None:
        candidates = np.round(np.arange(0.30, 0.99, 0.01), 2)
    correct_in = correct_in.astype(bool)
    best: tuple[float, float, dict] | None = None
    for threshold in candidates:
        flagged_in = confidence_in < threshold
        flagged_out = confidence_out < threshold
        correct_flagged = float(np.mean(flagged_in[correct_in])) if correct_in.any() else 0.0
        wrong_accepted = float(np.mean(~flagged_in[~correct_in])) if (~correct_in).any() else 0.0
        ood_accepted = float(np.mean(~flagged_out)) if len(confidence_out) else 0.0
        cost = correct_flagged + 0.5 * wrong_accepted + ood_accepted
        stats = {
            "correct_flagged": correct_flagged,
            "wrong_accepted": wrong_accepted,
            "ood_accepted": ood_accepted,
            "cost": cost,
        }
        if best is None or cost < best[1] - 1e-12:
            best = (float(threshold), cost, stats)
    assert best is not None
    return best[0], best[2]


def novelty_threshold(similarity_in: np.ndarray, false_alarm: float) -> float:
    """The similarity below which an image counts as unlike the training images.

    A fixed budget, not a fit to any outlier set: at most ``false_alarm`` of the
    in-distribution validation images fall strictly below it, so the novelty
    check alone flags about that share of real fetal images.
    """
    if not len(similarity_in):
        raise ValueError("no validation similarities to choose the novelty threshold from")
    ordered = np.sort(np.asarray(similarity_in, dtype=float))
    allowed = int(np.floor(false_alarm * len(ordered)))  # images that may fall below
    return float(ordered[allowed])
