"""Patient-level cross-validation of the training recipe on train + val, the test split left out.

The test split is small (18 thorax images) and has been seen by every development
run, so it cannot say much more. Cross-validation re-uses the 473 train + val
fetal images instead: every patient is held out once, and each fold's model is
trained by the unchanged recipe, with its own validation patients (for early
stopping and thresholds) drawn from the fold's training side. It reports; it
chooses nothing.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from classifier.ml import metrics, offsets
from classifier.ml.data import CLASS_NAMES, Record, load_array, read_manifest


def patient_folds(groups: list[str], folds: int, seed: int) -> dict[str, int]:
    """Fold index per patient group: shuffled with ``seed``, dealt round-robin so fold sizes differ by one."""
    unique = sorted(set(groups))
    order = np.random.default_rng(seed).permutation(len(unique))
    return {unique[index]: position % folds for position, index in enumerate(order)}


def fold_records(
    records: list[Record], fold: int, folds: int, *, seed: int, val_share: float, train_share: float = 1.0
) -> list[Record]:
    """Train + val rows with their splits reassigned: the fold's patients become "test", a ``val_share`` of the
    remaining patients "val", the rest "train". Rows of the manifest's test split are dropped.

    ``train_share`` below 1 keeps only that share of the training patients (a learning curve): the held-out
    and validation patients stay exactly those of the full run, so the two compare image by image.
    """
    if not 0 < train_share <= 1:
        raise ValueError(f"train_share must be in (0, 1], not {train_share}")
    pool = [r for r in records if r.split in ("train", "val")]
    assignment = patient_folds([r.group for r in pool], folds, seed)
    rest = sorted({r.group for r in pool if assignment[r.group] != fold})
    shuffled = np.random.default_rng(seed + fold + 1).permutation(rest)
    val_groups = set(shuffled[: max(1, round(val_share * len(rest)))])
    split_of = {g: "test" if assignment[g] == fold else "val" if g in val_groups else "train" for g in assignment}
    if train_share < 1:
        train_groups = sorted(g for g, split in split_of.items() if split == "train")
        kept = np.random.default_rng(seed + fold + 101).permutation(train_groups)[
            : round(train_share * len(train_groups))
        ]
        dropped = set(train_groups) - set(kept)
        pool = [r for r in pool if r.group not in dropped]
    return [dataclasses.replace(r, split=split_of[r.group]) for r in pool]


def study_out_of_fold(rows: list[dict]) -> dict:
    """What two post-hoc changes would do to the out-of-fold predictions, with figures pooled as above.

    - ``class_offsets``: logit offsets (:mod:`classifier.ml.offsets`) fitted on all rows, the ones to train
      with; and, to judge them, each fold adjusted by offsets fitted on the other folds only.
    - ``mirrored_average``: averaging each image's probabilities with its left-right mirror's (test-time flip).
    """
    labels = np.array([CLASS_NAMES.index(row["label"]) for row in rows])
    folds = np.array([row["fold"] for row in rows])
    sources = np.array([row["source"] for row in rows])
    probabilities = np.array([row["probabilities"] for row in rows], dtype=np.float64)
    mirrored = np.array([row["mirrored_probabilities"] for row in rows], dtype=np.float64)

    def figures(adjusted: np.ndarray) -> dict:
        predicted = adjusted.argmax(1)
        return {
            "all": metrics.summary(labels, predicted, CLASS_NAMES),
            **{
                str(source): metrics.summary(labels[sources == source], predicted[sources == source], CLASS_NAMES)
                for source in sorted(set(sources))
            },
        }

    cross_fitted_probabilities, fold_offsets = offsets.cross_fitted(probabilities, labels, folds)
    return {
        "n": len(rows),
        "as_trained": figures(probabilities),
        "class_offsets": {
            "fitted_on_all_folds": [round(float(v), 4) for v in offsets.fit_offsets(probabilities, labels)],
            "per_fold_fitted_on_the_others": [[round(float(v), 4) for v in o] for o in fold_offsets],
            "cross_fitted": figures(cross_fitted_probabilities),
        },
        "mirrored_average": figures((probabilities + mirrored) / 2),
    }


def _held_out_predictions(model_path: Path, data_dir, records: list[Record], *, card: dict, fold: int) -> list[dict]:
    """Each held-out image's probabilities, as is and mirrored left-right, and its novelty similarity: the
    out-of-fold predictions that post-hoc choices (class offsets, test-time flips) can be studied on."""
    import keras

    from classifier.ml.evaluate import predict_outputs

    model = keras.saving.load_model(model_path, safe_mode=True, compile=False)
    images = load_array(data_dir, records, card["input_size"])
    probabilities, similarity = predict_outputs(model, images)
    mirrored, _ = predict_outputs(model, images[:, :, ::-1, :].copy())
    return [
        {
            "file": record.file,
            "source": record.source,
            "label": record.label,
            "fold": fold,
            "probabilities": [round(float(v), 6) for v in probabilities[i]],
            "mirrored_probabilities": [round(float(v), 6) for v in mirrored[i]],
            "similarity": round(float(similarity[i]), 6) if similarity is not None else None,
            "needs_review_threshold": card["needs_review_threshold"],
            "novelty_threshold": card.get("novelty_threshold"),
        }
        for i, record in enumerate(records)
    ]


def cross_validate(
    *,
    data_dir: str | Path,
    folds: int = 5,
    seed: int = 20261127,
    val_share: float = 0.18,
    train_share: float = 1.0,
    config=None,
    log: Callable[[str], None] = print,
) -> dict:
    """Train the recipe once per fold and pool every held-out image's prediction."""
    from classifier.ml.train import TrainConfig, limit_per_label, train

    config = config or TrainConfig()
    records = read_manifest(data_dir)
    per_fold: list[dict] = []
    out_of_fold: list[dict] = []
    for fold in range(folds):
        assigned = fold_records(records, fold, folds, seed=seed, val_share=val_share, train_share=train_share)
        held_out_records = [
            r for r in limit_per_label(assigned, config.limit_per_label) if r.split == "test" and r.is_fetal
        ]
        with tempfile.TemporaryDirectory() as out_dir:
            card = train(
                data_dir=data_dir,
                out_dir=out_dir,
                version=f"cv{fold}",
                config=config,
                records=assigned,
                log=lambda message, fold=fold: log(f"[fold {fold + 1}/{folds}] {message}"),
            )
            out_of_fold.extend(
                _held_out_predictions(Path(out_dir) / card["file"], data_dir, held_out_records, card=card, fold=fold)
            )
        held_out = card["metrics"]["test"]
        per_fold.append(
            {
                "fold": fold,
                "n": held_out["n"],
                "accuracy": held_out["accuracy"],
                "macro_f1": held_out["macro_f1"],
                "per_class_recall": {k: v["recall"] for k, v in held_out["per_class"].items()},
                "flagged_share": held_out["selective"]["flagged_share"],
            }
        )
    study = study_out_of_fold(out_of_fold)
    pooled_by_source = dict(study["as_trained"])
    return {
        "folds": folds,
        "seed": seed,
        "train_share": train_share,
        "config": dataclasses.asdict(config),  # the recipe these figures judge: input size, offsets, training seed
        "pooled": pooled_by_source.pop("all"),
        "pooled_by_source": pooled_by_source,
        "per_fold": per_fold,
        "out_of_fold_study": study,
        "out_of_fold": out_of_fold,
        "note": "held-out predictions of train + val patients pooled over folds; the test split is not used",
    }
