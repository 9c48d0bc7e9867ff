"""Brain sub-plane from the plane classifier's features: a feasibility study (issue 21, item 6).

HC and BPD belong on the trans-thalamic plane. This asks whether the committed plane classifier's pooled
features tell the trans-thalamic, trans-cerebellar and trans-ventricular planes apart well enough to suggest
one: a multinomial logistic regression on those features, cross-validated by patient, judged by a rule fixed
beforehand (``RULE``; the plan is in docs/biometry.md). It reports; nothing here runs in the worker.

Plain Python and NumPy; Keras only inside :func:`embed` and :func:`feature_model`.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from classifier.ml import metrics
from classifier.ml.crossval import patient_folds

SUBPLANES = ("Trans-thalamic", "Trans-cerebellum", "Trans-ventricular")
TRANS_THALAMIC = SUBPLANES.index("Trans-thalamic")
BRAIN_LABEL = "fetal_brain"
NEAR_DUPLICATE = 0.97  # cosine similarity of two images' features at or above which their patients are merged
L2_GRID = tuple(10.0**power for power in range(-3, 3))
INNER_FOLDS = 4


@dataclass(frozen=True)
class UsefulnessRule:
    """When a sub-plane suggestion is worth showing: fixed before the first run (docs/biometry.md)."""

    min_macro_recall: float = 0.80
    min_macro_recall_lower: float = 0.70
    min_trans_thalamic_precision: float = 0.85
    min_trans_thalamic_precision_lower: float = 0.75

    def shortfalls(self, figures: dict) -> list[str]:
        """What in ``figures`` (from :func:`figures`) falls short of the rule; empty when it passes."""
        checks = (
            ("macro recall", figures["macro_recall"], self.min_macro_recall, self.min_macro_recall_lower),
            (
                "trans-thalamic precision",
                figures["per_class"][SUBPLANES[TRANS_THALAMIC]]["precision"],
                self.min_trans_thalamic_precision,
                self.min_trans_thalamic_precision_lower,
            ),
        )
        failures = []
        for name, figure, minimum, minimum_lower in checks:
            if figure["value"] < minimum:
                failures.append(f"{name} {figure['value']:.3f} < {minimum:.2f}")
            if figure["ci"][0] < minimum_lower:
                failures.append(f"{name}'s lower 95% bound {figure['ci'][0]:.3f} < {minimum_lower:.2f}")
        return failures


RULE = UsefulnessRule()


@dataclass(frozen=True)
class BrainImage:
    file: str
    group: str
    split: str
    subplane: str
    sha256: str

    @property
    def label(self) -> int:
        return SUBPLANES.index(self.subplane)


def read_brain_images(data_dir: str | Path) -> list[BrainImage]:
    """The manifest's brain images that carry one of the three sub-planes, in manifest order."""
    with open(Path(data_dir) / "manifest.csv", newline="") as handle:
        return [
            BrainImage(row["file"], row["group"], row["split"], row["brain_plane"], row["sha256"])
            for row in csv.DictReader(handle)
            if row["label"] == BRAIN_LABEL and row.get("brain_plane") in SUBPLANES
        ]


def merge_near_duplicates(groups: Sequence[str], features: np.ndarray, threshold: float = NEAR_DUPLICATE) -> list[str]:
    """Each image's group after merging groups that share a near-identical image pair (cosine similarity of
    their ``features`` >= ``threshold``), transitively. A merged group is named by its members joined by "+"."""
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    parent = {group: group for group in groups}

    def root(group: str) -> str:
        while parent[group] != group:
            parent[group] = parent[parent[group]]
            group = parent[group]
        return group

    for i, j in zip(*np.nonzero(np.triu(unit @ unit.T >= threshold, k=1)), strict=True):
        a, b = root(groups[i]), root(groups[j])
        if a != b:
            parent[max(a, b)] = min(a, b)
    members: dict[str, list[str]] = {}
    for group in sorted(parent):
        members.setdefault(root(group), []).append(group)
    name = {root_: "+".join(names) for root_, names in members.items()}
    return [name[root(group)] for group in groups]


def fold_of(groups: Sequence[str], folds: int, seed: int) -> np.ndarray:
    """Fold index per image: whole groups (patients) dealt to folds as the classifier's cross-validation does."""
    assignment = patient_folds(list(groups), folds, seed)
    return np.array([assignment[group] for group in groups], dtype=np.int64)


@dataclass(frozen=True)
class SoftmaxRegression:
    """Multinomial logistic regression on standardised features, L2 on the weights (not the bias)."""

    weights: np.ndarray  # (features, classes)
    bias: np.ndarray  # (classes,)
    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(
        cls, x: np.ndarray, y: np.ndarray, *, num_classes: int, l2: float, max_iterations: int = 3000
    ) -> SoftmaxRegression:
        """Minimise mean cross-entropy + l2/2 |W|^2 by Nesterov-accelerated gradient descent (convex, so the
        start does not matter: zeros, deterministic), until the gradient's norm is below 1e-6."""
        mean, scale = x.mean(axis=0), np.maximum(x.std(axis=0), 1e-6)
        z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
        targets = np.eye(num_classes)[y]
        # The softmax cross-entropy's Hessian is at most 1/2 Z'Z/n per class: a safe constant step.
        step = 1.0 / (0.5 * np.linalg.norm(z, 2) ** 2 / len(z) + l2)
        penalty = np.ones((z.shape[1], 1))
        penalty[-1] = 0.0
        theta = previous = np.zeros((z.shape[1], num_classes))
        for iteration in range(1, max_iterations + 1):
            look = theta + (iteration - 1) / (iteration + 2) * (theta - previous)
            gradient = z.T @ (_softmax(z @ look) - targets) / len(z) + l2 * penalty * look
            previous, theta = theta, look - step * gradient
            if np.linalg.norm(gradient) < 1e-6:
                break
        return cls(weights=theta[:-1], bias=theta[-1], mean=mean, scale=scale)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        return _softmax((x - self.mean) / self.scale @ self.weights + self.bias)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def log_loss(y: np.ndarray, probabilities: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(probabilities[np.arange(len(y)), y], 1e-12, 1.0))))


def choose_l2(x: np.ndarray, y: np.ndarray, groups: Sequence[str], *, num_classes: int, seed: int) -> float:
    """The ``L2_GRID`` value with the smallest mean held-out log-loss over a grouped inner cross-validation."""
    inner = fold_of(groups, min(INNER_FOLDS, len(set(groups))), seed)
    losses = []
    for l2 in L2_GRID:
        fold_losses = []
        for fold in np.unique(inner):
            train, held = inner != fold, inner == fold
            model = SoftmaxRegression.fit(x[train], y[train], num_classes=num_classes, l2=l2)
            fold_losses.append(log_loss(y[held], model.probabilities(x[held])))
        losses.append(np.mean(fold_losses))
    return L2_GRID[int(np.argmin(losses))]


def out_of_fold(
    x: np.ndarray, y: np.ndarray, groups: Sequence[str], *, folds: int, seed: int
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Held-out probabilities (n, classes) from a patient-grouped cross-validation, each image's fold and
    the L2 strength each fold chose on its own training side."""
    num_classes = len(SUBPLANES)
    fold = fold_of(groups, folds, seed)
    probabilities = np.zeros((len(y), num_classes))
    chosen = []
    for k in range(folds):
        train, held = fold != k, fold == k
        train_groups = [g for g, keep in zip(groups, train, strict=True) if keep]
        l2 = choose_l2(x[train], y[train], train_groups, num_classes=num_classes, seed=seed + k + 1)
        model = SoftmaxRegression.fit(x[train], y[train], num_classes=num_classes, l2=l2)
        probabilities[held] = model.probabilities(x[held])
        chosen.append(l2)
    return probabilities, fold, chosen


def _point_figures(y: np.ndarray, predicted: np.ndarray) -> dict[str, np.ndarray | float]:
    matrix = metrics.confusion_matrix(y, predicted, len(SUBPLANES))
    precision, recall, _ = metrics.per_class(matrix)
    return {
        "precision": precision,
        "recall": recall,
        "macro_recall": float(recall.mean()),
        "accuracy": float(np.mean(y == predicted)),
    }


def figures(y: np.ndarray, predicted: np.ndarray, groups: Sequence[str], *, rounds: int = 2000, seed: int = 0) -> dict:
    """Per-class precision and recall, macro recall and accuracy, each with a 95 % percentile bootstrap
    interval resampling groups (patients), and the confusion matrix (rows true, columns predicted)."""
    point = _point_figures(y, predicted)
    group_ids = np.unique(np.asarray(groups), return_inverse=True)[1]
    members = [np.flatnonzero(group_ids == g) for g in range(group_ids.max() + 1)]
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(rounds):
        chosen = np.concatenate([members[g] for g in rng.integers(0, len(members), len(members))])
        draws.append(_point_figures(y[chosen], predicted[chosen]))

    def figure(value: float, samples: list[float]) -> dict:
        return {"value": float(value), "ci": [float(np.percentile(samples, 2.5)), float(np.percentile(samples, 97.5))]}

    return {
        "n": int(len(y)),
        "groups": len(members),
        "macro_recall": figure(point["macro_recall"], [d["macro_recall"] for d in draws]),
        "accuracy": figure(point["accuracy"], [d["accuracy"] for d in draws]),
        "per_class": {
            name: {
                "support": int(np.sum(y == i)),
                "precision": figure(point["precision"][i], [d["precision"][i] for d in draws]),
                "recall": figure(point["recall"][i], [d["recall"][i] for d in draws]),
            }
            for i, name in enumerate(SUBPLANES)
        },
        "confusion_matrix": metrics.confusion_matrix(y, predicted, len(SUBPLANES)).tolist(),
        "ci_method": f"95% percentile bootstrap over patient groups, {rounds} rounds, seed {seed}",
    }


def feature_model(model):
    """``model`` cut at the input of the layer that gives its class probabilities (for the plane classifier:
    the globally pooled backbone features; dropout is inactive at inference)."""
    import keras

    probabilities_layer = model.outputs[0]._keras_history.operation
    return keras.Model(model.inputs[0], probabilities_layer.input, name="subplane_features")


def embed(features, images: np.ndarray, *, flip: bool = False, batch_size: int = 16) -> np.ndarray:
    """Features (N, D) of preprocessed ``images`` (N, S, S, 3) in 0..255; with ``flip`` the mean of the
    image's and its horizontal mirror's features."""
    batches = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].astype(np.float32)
        out = np.asarray(features(batch, training=False))
        if flip:
            out = (out + np.asarray(features(batch[:, :, ::-1], training=False))) / 2
        batches.append(out)
    return np.concatenate(batches).astype(np.float64)


def load_images(data_dir: str | Path, images: Sequence[BrainImage], input_size: int) -> np.ndarray:
    """Decode and preprocess with the one preprocessing path, checking each file's sha256."""
    from classifier.ml.preprocessing import load_image, preprocess

    batch = np.zeros((len(images), input_size, input_size, 3), dtype=np.float32)
    for index, image in enumerate(images):
        data = (Path(data_dir) / image.file).read_bytes()
        if hashlib.sha256(data).hexdigest() != image.sha256:
            raise ValueError(f"{image.file}: sha256 does not match the manifest")
        batch[index] = preprocess(load_image(data), input_size)
    return batch


def study(
    features: np.ndarray, images: Sequence[BrainImage], *, folds: int, seed: int, merge_groups: Sequence[str]
) -> dict:
    """Cross-validate on ``features`` and report the figures, the test-split subset's and the rule's verdict."""
    y = np.array([image.label for image in images], dtype=np.int64)
    probabilities, fold, l2s = out_of_fold(features, y, merge_groups, folds=folds, seed=seed)
    predicted = probabilities.argmax(axis=1)
    result = figures(y, predicted, merge_groups, seed=seed)
    test = np.array([image.split == "test" for image in images])
    shortfalls = RULE.shortfalls(result)
    return {
        "figures": result,
        "test_split_only": figures(y[test], predicted[test], [g for g, t in zip(merge_groups, test, strict=True) if t])
        if test.sum() > 1
        else None,
        "l2_per_fold": l2s,
        "log_loss": log_loss(y, probabilities),
        "useful": not shortfalls,
        "shortfalls": shortfalls,
        "predictions": [
            {"file": image.file, "true": image.subplane, "predicted": SUBPLANES[p], "fold": int(f)}
            | {name: round(float(q), 4) for name, q in zip(SUBPLANES, row, strict=True)}
            for image, p, f, row in zip(images, predicted, fold, probabilities, strict=True)
        ],
    }


def evaluate(data_dir: str | Path, card_path: str | Path, *, folds: int = 5, seed: int = 0) -> dict:
    """The whole study: features of the card's model on the brain images, plain (deciding) and mirrored
    (secondary), near-duplicate patients merged, patient-grouped cross-validation, figures and verdict."""
    from classifier.ml.card import read_card
    from classifier.ml.inference import PlaneClassifier

    card = read_card(card_path)
    classifier = PlaneClassifier.from_card(card, Path(card_path).parent / card["file"])
    extractor = feature_model(classifier.model)
    images = read_brain_images(data_dir)
    if len({image.group for image in images}) < folds:
        raise ValueError(f"{len(images)} brain images with a sub-plane: fewer patients than {folds} folds")
    pixels = load_images(data_dir, images, int(card["input_size"]))
    plain = embed(extractor, pixels)
    mirrored = embed(extractor, pixels, flip=True)
    groups = merge_near_duplicates([image.group for image in images], plain)
    if len(set(groups)) < folds:
        raise ValueError(f"{len(set(groups))} patient groups after merging near-duplicates: fewer than {folds} folds")
    return {
        "question": "can the plane classifier's features suggest the brain sub-plane (docs/biometry.md)?",
        "model": {key: card[key] for key in ("name", "version", "file", "sha256", "input_size")},
        "features": int(plain.shape[1]),
        "data": {
            "images": len(images),
            "patients": len({image.group for image in images}),
            "groups_after_merging_near_duplicates": len(set(groups)),
            "merged_groups": sorted({g for g in groups if "+" in g}),
            "near_duplicate_cosine": NEAR_DUPLICATE,
            "per_subplane": {name: sum(image.subplane == name for image in images) for name in SUBPLANES},
            "per_split": {s: sum(image.split == s for image in images) for s in ("train", "val", "test")},
        },
        "method": {"folds": folds, "seed": seed, "l2_grid": list(L2_GRID), "inner_folds": INNER_FOLDS},
        "rule": asdict(RULE),
        "plain": study(plain, images, folds=folds, seed=seed, merge_groups=groups),
        "mirror_averaged": study(mirrored, images, folds=folds, seed=seed, merge_groups=groups),
    }


def format_report(result: dict) -> str:
    """A few lines for the terminal: the deciding figures, the secondary ones and the verdict."""
    lines = [f"{result['data']['images']} images, {result['data']['groups_after_merging_near_duplicates']} groups"]
    for variant in ("plain", "mirror_averaged"):
        block = result[variant]["figures"]
        lines.append(
            f"{variant}: macro recall {_fmt(block['macro_recall'])}, accuracy {_fmt(block['accuracy'])}, "
            f"L2 per fold {result[variant]['l2_per_fold']}"
        )
        for name, entry in block["per_class"].items():
            lines.append(
                f"  {name:18s} n={entry['support']:3d} precision {_fmt(entry['precision'])} "
                f"recall {_fmt(entry['recall'])}"
            )
        lines.append(f"  confusion (rows true, columns predicted, {', '.join(SUBPLANES)}): {block['confusion_matrix']}")
    verdict = result["plain"]
    lines.append("useful: yes" if verdict["useful"] else "useful: no: " + "; ".join(verdict["shortfalls"]))
    return "\n".join(lines)


def _fmt(figure: dict) -> str:
    return f"{figure['value']:.3f} [{figure['ci'][0]:.3f}, {figure['ci'][1]:.3f}]"
