"""How often a model would show the bar on a test split of a given make-up, if its true error rates are
the ones cross-validation measured.

The bar is judged on a small test split (18 thoraxes, 6 of them from FETAL_PLANES_DB), where one image
moves a recall by 6 to 17 points. This module turns a cross-validation's out-of-fold predictions into
the chance of passing each figure of the bar, so that a miss on test can be read as "the model is short"
or "the split cannot tell", and a planner can see what test size would tell.

Each source's confusion-matrix rows are drawn by the Bayesian bootstrap (Rubin 1981: a Dirichlet over the
observed out-of-fold counts, no prior), then the test split's images of each class are drawn from that
row. A prior would impute errors where none were seen: Jeffreys' 1/2 per cell gives a row of 22 femurs
with no error a 6% error rate, which swamps the figures of the small FETAL_PLANES_DB rows.
Plain NumPy; the bar itself comes from :mod:`classifier.ml.evaluate`, so there is one definition of it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from classifier.ml.evaluate import bar_shortfalls
from classifier.ml.metrics import per_class


def out_of_fold_counts(rows: Iterable[dict], class_names: Sequence[str]) -> dict[str, np.ndarray]:
    """Confusion matrix (rows true) per source from a cross-validation's ``out_of_fold`` rows (argmax, as trained)."""
    counts: dict[str, np.ndarray] = {}
    for row in rows:
        matrix = counts.setdefault(row["source"], np.zeros((len(class_names), len(class_names)), dtype=np.int64))
        predicted = int(np.argmax(row["probabilities"]))  # listed in class_names order
        matrix[class_names.index(row["label"]), predicted] += 1
    return counts


def assumed_rates(recall: float, num_classes: int) -> np.ndarray:
    """A confusion matrix of rates for a model with ``recall`` on every class and its errors spread evenly
    over the other classes: the "what if the model were this good" input for sizing a test split."""
    if not 0 < recall <= 1:
        raise ValueError(f"recall must be in (0, 1], not {recall}")
    rates = np.full((num_classes, num_classes), (1 - recall) / (num_classes - 1))
    np.fill_diagonal(rates, recall)
    return rates


def split_support(labels_by_source: Iterable[tuple[str, str]], class_names: Sequence[str]) -> dict[str, np.ndarray]:
    """Images per class and source, from (source, label) pairs of a split's fetal images."""
    tally = Counter(labels_by_source)
    sources = sorted({source for source, _ in tally})
    return {source: np.array([tally[(source, name)] for name in class_names], dtype=np.int64) for source in sources}


def block(matrix: np.ndarray, class_names: Sequence[str]) -> dict:
    """The figures :func:`bar_shortfalls` reads, from one confusion matrix."""
    _, recall, f1 = per_class(matrix)
    total = matrix.sum()
    return {
        "accuracy": float(np.trace(matrix) / total) if total else 0.0,
        "macro_f1": float(f1.mean()),
        "per_class": {
            name: {"recall": float(recall[i]), "support": int(matrix[i].sum())} for i, name in enumerate(class_names)
        },
    }


def _row_rates(measured: np.ndarray, rng: np.random.Generator, plug_in: bool) -> np.ndarray:
    """One confusion-matrix row's rates: as measured, or a Bayesian-bootstrap draw over the cells seen."""
    if plug_in:
        return measured / measured.sum()
    seen = measured > 0
    rates = np.zeros(len(measured))
    rates[seen] = rng.dirichlet(measured[seen])
    return rates


def simulate(
    counts: dict[str, np.ndarray],
    support: dict[str, np.ndarray],
    class_names: Sequence[str],
    *,
    draws: int = 20000,
    seed: int = 0,
    plug_in: bool = False,
) -> dict:
    """Share of simulated test splits that meet the whole bar, and the share that miss each item.

    ``plug_in`` takes the out-of-fold rates as the true rates instead of drawing them (narrower: it ignores
    that cross-validation measured them on a few hundred images).
    """
    for source, n_per_class in support.items():
        measured = counts.get(source, np.zeros((len(class_names),) * 2)).sum(axis=1)
        unmeasured = [name for name, n, m in zip(class_names, n_per_class, measured, strict=True) if n and not m]
        if unmeasured:
            raise ValueError(f"no out-of-fold predictions for {source} {', '.join(unmeasured)}")
    rng = np.random.default_rng(seed)
    size = len(class_names)
    passed = 0
    misses: Counter[str] = Counter()
    for _ in range(draws):
        matrices = {}
        for source, n_per_class in support.items():
            matrix = np.zeros((size, size), dtype=np.int64)
            for c in range(size):
                if n_per_class[c] == 0:
                    continue
                matrix[c] = rng.multinomial(n_per_class[c], _row_rates(counts[source][c], rng, plug_in))
            matrices[source] = matrix
        result = {
            **block(sum(matrices.values()), class_names),
            "per_source": {source: block(matrix, class_names) for source, matrix in matrices.items()},
        }
        items = {item for item, _, _ in bar_shortfalls(result)}
        passed += not items
        misses.update(items)
    return {
        "draws": draws,
        "plug_in": plug_in,
        "pass_share": passed / draws,
        "miss_share": {item: n / draws for item, n in misses.most_common()},
    }


def format_simulation(result: dict, *, top: int = 8) -> str:
    kind = "plug-in rates" if result["plug_in"] else "rates drawn by the Bayesian bootstrap"
    lines = [f"meets the whole bar in {result['pass_share']:.1%} of {result['draws']} simulated test splits ({kind})"]
    for item, share in list(result["miss_share"].items())[:top]:
        lines.append(f"  misses {item}: {share:.1%}")
    return "\n".join(lines)
