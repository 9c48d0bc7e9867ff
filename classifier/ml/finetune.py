"""Fine-tuning: one member per seed from the same starting weights, then a weight average ("model soup").

Members start from the same ImageNet backbone and trained head and differ only
in their seed (augmentation, batch order, outlier sampling, dropout). Fine-tuned
gently from one starting point they stay in one basin of the loss, so their
averaged weights usually predict better than any single member, at the cost of
one model (Wortsman et al., "Model soups", ICML 2022). Validation loss decides
between the soup and the best member.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from classifier.ml import metrics
from classifier.ml.augment import Augmenter
from classifier.ml.data import CLASS_NAMES


@dataclass
class MemberResult:
    seed: int
    weights: list[np.ndarray]
    val_loss: float
    kind: str  # "best_epoch" or "weight_average" (of the epochs from swa_start_epoch on)
    history: list[dict] = field(default_factory=list)


def one_hot(indices: np.ndarray, num_classes: int) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float32)[indices]


def uniform_targets(count: int, num_classes: int) -> np.ndarray:
    return np.full((count, num_classes), 1.0 / num_classes, dtype=np.float32)


def average_weights(weight_lists: list[list[np.ndarray]]) -> list[np.ndarray]:
    return [np.mean(np.stack(tensors), axis=0) for tensors in zip(*weight_lists, strict=True)]


def cross_entropy(targets: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean categorical cross-entropy without label smoothing: the selection criterion on val."""
    return float(-np.mean(np.sum(targets * np.log(np.clip(probabilities, 1e-7, 1.0)), axis=1)))


@dataclass(frozen=True)
class FinetuneData:
    """What every member trains and is judged on: fetal train images with their labels and class weights, the
    outlier pool (uniform targets), and the val images."""

    x_train: np.ndarray
    y_train: np.ndarray
    outliers: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    class_weight: np.ndarray


@dataclass(frozen=True)
class FinetuneSchedule:
    epochs: int
    batch_size: int
    learning_rate: float
    patience: int  # epochs without a better val loss before stopping
    swa_start_epoch: int  # average the weights of every epoch from here on
    outliers_per_epoch: int
    outlier_weight: float


def _train_epoch(
    model, data: FinetuneData, schedule: FinetuneSchedule, *, augmenter: Augmenter, rng: np.random.Generator
) -> float:
    """One epoch over the fetal images and a fresh draw of outliers, in ``rng``'s order; the mean batch loss."""
    num_classes = len(CLASS_NAMES)
    x_train, y_train, outliers = data.x_train, data.y_train, data.outliers
    chosen = rng.choice(len(outliers), min(schedule.outliers_per_epoch, len(outliers)), replace=False)
    order = rng.permutation(len(x_train) + len(chosen))
    losses = []
    for start in range(0, len(order), schedule.batch_size):
        batch = order[start : start + schedule.batch_size]
        fetal = batch[batch < len(x_train)]
        other = chosen[batch[batch >= len(x_train)] - len(x_train)]
        images = np.concatenate([x_train[fetal].astype(np.float32), outliers[other]])
        targets = np.concatenate([one_hot(y_train[fetal], num_classes), uniform_targets(len(other), num_classes)])
        weights = np.concatenate([data.class_weight[y_train[fetal]], np.full(len(other), schedule.outlier_weight)])
        losses.append(float(model.train_on_batch(augmenter(images), targets, sample_weight=weights.astype(np.float32))))
    return float(np.mean(losses))


class _WeightSum:
    """The running sum of the weights of the epochs from ``swa_start_epoch`` on (stochastic weight averaging)."""

    def __init__(self) -> None:
        self.total: list[np.ndarray] | None = None
        self.count = 0

    def add(self, weights: list[np.ndarray]) -> None:
        self.total = weights if self.total is None else [a + b for a, b in zip(self.total, weights, strict=True)]
        self.count += 1

    def mean(self) -> list[np.ndarray]:
        return [w / self.count for w in self.total]


def _prefer_weight_average(
    model,
    result: MemberResult,
    *,
    best_epoch: int,
    weight_sum: _WeightSum,
    data: FinetuneData,
    predict: Callable[[object, np.ndarray], np.ndarray],
    log: Callable[[str], None],
) -> MemberResult:
    """The average of the epochs' weights instead of ``result``'s best epoch when it has the lower val loss
    (two epochs or more only); leaves ``model`` with the averaged weights when it tried them."""
    if weight_sum.count < 2:
        return result
    averaged = weight_sum.mean()
    model.set_weights(averaged)
    swa_loss = cross_entropy(one_hot(data.y_val, len(CLASS_NAMES)), predict(model, data.x_val))
    log(
        f"seed {result.seed}: best epoch {best_epoch} val loss {result.val_loss:.4f}; "
        f"average of {weight_sum.count} epochs {swa_loss:.4f}"
    )
    if swa_loss > result.val_loss:
        return result
    return MemberResult(
        seed=result.seed, weights=averaged, val_loss=swa_loss, kind="weight_average", history=result.history
    )


def finetune_member(
    model,
    *,
    seed: int,
    augmenter: Augmenter,
    rng: np.random.Generator,
    start_weights: list[np.ndarray],
    data: FinetuneData,
    schedule: FinetuneSchedule,
    loss,
    predict: Callable[[object, np.ndarray], np.ndarray],
    log: Callable[[str], None],
) -> MemberResult:
    """Fine-tune ``model`` (backbone unfrozen) from ``start_weights``, drawing augmentation from ``augmenter``
    and outlier sampling and batch order from ``rng``; ``seed`` names the member."""
    import keras

    model.set_weights(start_weights)
    per_epoch = min(schedule.outliers_per_epoch, len(data.outliers))
    steps_per_epoch = -(-(len(data.x_train) + per_epoch) // schedule.batch_size)
    decay = keras.optimizers.schedules.CosineDecay(
        schedule.learning_rate, decay_steps=steps_per_epoch * schedule.epochs, alpha=0.05
    )
    model.compile(optimizer=keras.optimizers.Adam(decay), loss=loss)
    val_targets = one_hot(data.y_val, len(CLASS_NAMES))

    best_loss, best_weights, best_epoch, waited = np.inf, model.get_weights(), 0, 0
    weight_sum, history = _WeightSum(), []
    for epoch in range(1, schedule.epochs + 1):
        started = time.perf_counter()
        train_loss = _train_epoch(model, data, schedule, augmenter=augmenter, rng=rng)
        probabilities = predict(model, data.x_val)
        val_loss = cross_entropy(val_targets, probabilities)
        summary = metrics.summary(data.y_val, probabilities.argmax(1), CLASS_NAMES)
        history.append(
            {
                "epoch": epoch,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "val_accuracy": summary["accuracy"],
                "val_macro_f1": summary["macro_f1"],
            }
        )
        log(
            f"seed {seed} epoch {epoch}/{schedule.epochs}: train loss {train_loss:.4f}, val loss {val_loss:.4f}, "
            f"val accuracy {summary['accuracy']:.3f}, macro-F1 {summary['macro_f1']:.3f} "
            f"({time.perf_counter() - started:.0f}s)"
        )
        if epoch >= schedule.swa_start_epoch:
            weight_sum.add(model.get_weights())
        if val_loss < best_loss - 1e-4:
            best_loss, best_weights, best_epoch, waited = val_loss, model.get_weights(), epoch, 0
        else:
            waited += 1
            if waited >= schedule.patience:
                log(f"seed {seed}: early stop, best epoch {best_epoch}")
                break
    result = MemberResult(seed=seed, weights=best_weights, val_loss=best_loss, kind="best_epoch", history=history)
    return _prefer_weight_average(
        model, result, best_epoch=best_epoch, weight_sum=weight_sum, data=data, predict=predict, log=log
    )


def choose_soup(
    model,
    members: list[MemberResult],
    *,
    x_val: np.ndarray,
    y_val: np.ndarray,
    predict: Callable[[object, np.ndarray], np.ndarray],
    log: Callable[[str], None],
) -> dict:
    """Set ``model`` to the uniform soup of the members or the best member, whichever has the lower val loss."""
    targets = one_hot(y_val, len(CLASS_NAMES))
    best = min(members, key=lambda member: member.val_loss)
    selection = {
        "members": [{"seed": m.seed, "kind": m.kind, "val_loss": m.val_loss, "history": m.history} for m in members],
        "kind": "best_member",
        "seed": best.seed,
        "val_loss": best.val_loss,
    }
    if len(members) >= 2:
        member_probabilities = []
        for member in members:
            model.set_weights(member.weights)
            member_probabilities.append(predict(model, x_val))
        # For the record only: averaging predictions would cost one forward pass per member.
        selection["ensemble_val_loss"] = cross_entropy(targets, np.mean(member_probabilities, axis=0))
        soup = average_weights([m.weights for m in members])
        model.set_weights(soup)
        soup_loss = cross_entropy(targets, predict(model, x_val))
        selection["soup_val_loss"] = soup_loss
        log(f"soup of {len(members)} members: val loss {soup_loss:.4f}; best member {best.val_loss:.4f}")
        if soup_loss <= best.val_loss:
            selection.update(kind="uniform_soup", val_loss=soup_loss, seed=None)
            return selection
    model.set_weights(best.weights)
    return selection
