"""Per-class logit offsets: a prior correction fitted on out-of-fold predictions.

Cross-validation showed a one-sided error: thorax images called abdomen, and
hardly ever the reverse. Class weights balance the training loss, but label
smoothing, the outliers' uniform targets and early stopping on a small
validation set still leave the classes' logits off balance. Adding a constant
to each class's logit (softmax(z + offset)) is the standard correction of
class priors (Menon et al., "Long-tail learning via logit adjustment", ICLR
2021). The offsets minimise the class-balanced cross-entropy of out-of-fold
predictions on train + val, so every plane counts alike, as the recall bar
does; the test split plays no part. They live in the classifier layer's bias,
so the model file and its latency do not change.
"""

from __future__ import annotations

import numpy as np


def apply_offsets(probabilities: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """softmax(log p + offsets), row by row."""
    logits = np.log(np.clip(probabilities, 1e-12, 1.0)) + np.asarray(offsets, dtype=np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def balanced_cross_entropy(probabilities: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    """Mean over the classes present of each class's mean cross-entropy."""
    picked = -np.log(np.clip(probabilities[np.arange(len(labels)), labels], 1e-12, 1.0))
    return float(np.mean([picked[labels == c].mean() for c in range(num_classes) if np.any(labels == c)]))


def fit_offsets(
    probabilities: np.ndarray, labels: np.ndarray, *, steps: int = 2000, learning_rate: float = 0.5
) -> np.ndarray:
    """Offsets (summing to zero) that minimise the class-balanced cross-entropy of ``apply_offsets``.

    The loss is convex in the offsets, so plain gradient descent from zero finds its minimum.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels)
    num_classes = probabilities.shape[1]
    present = [c for c in range(num_classes) if np.any(labels == c)]
    if len(present) < 2:
        raise ValueError("fitting offsets needs examples of at least two classes")
    weights = np.zeros(len(labels))
    for c in present:
        weights[labels == c] = 1.0 / (len(present) * np.sum(labels == c))
    targets = np.eye(num_classes)[labels]
    offsets = np.zeros(num_classes)
    for _ in range(steps):
        gradient = weights @ (apply_offsets(probabilities, offsets) - targets)
        offsets -= learning_rate * gradient
        offsets -= offsets.mean()
    return offsets


def cross_fitted(
    probabilities: np.ndarray, labels: np.ndarray, folds: np.ndarray
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Adjusted probabilities where each fold's rows get offsets fitted on the other folds' rows only: an
    estimate of what fitted offsets do to images they were not fitted on. Returns them and each fold's
    offsets."""
    adjusted = np.zeros_like(probabilities, dtype=np.float64)
    fitted = []
    for fold in np.unique(folds):
        inside = folds == fold
        offsets = fit_offsets(probabilities[~inside], labels[~inside])
        adjusted[inside] = apply_offsets(probabilities[inside], offsets)
        fitted.append(offsets)
    return adjusted, fitted
