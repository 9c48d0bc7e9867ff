"""Model cards: JSON for the registry, Markdown for people, side by side with the ``.keras`` file."""

from __future__ import annotations

import json
from pathlib import Path

# What a card's model does. Other models (the head segmenter, "head-segmentation") keep their cards in the same
# folder; a card without "task" is a plane classifier's (every card before issue 21).
PLANE_TASK = "plane-classification"
REQUIRED_KEYS = ("name", "version", "file", "sha256", "classes", "input_size", "needs_review_threshold", "metrics")


def is_plane_card(path: str | Path) -> bool:
    """Whether the card at ``path`` describes a plane classifier (its ``task``, absent in older cards)."""
    return json.loads(Path(path).read_text()).get("task", PLANE_TASK) == PLANE_TASK


def card_paths(out_dir: str | Path, name: str, version: str) -> tuple[Path, Path, Path]:
    stem = Path(out_dir) / f"{name}-v{version}"
    return stem.with_suffix(".keras"), stem.with_suffix(".card.json"), stem.with_suffix(".card.md")


def version_number(path: Path, name: str = "fetal-planes") -> int | None:
    """N of ``<name>-v<N>.card.json``; None for any other file name."""
    version = path.name.removeprefix(f"{name}-v").split(".")[0] if path.name.startswith(f"{name}-v") else ""
    return int(version) if version.isdigit() else None


def newest_card(models_dir: str | Path, name: str = "fetal-planes") -> Path | None:
    """The card of the highest version in ``models_dir`` (v10 after v9), or None when there is none."""
    cards = [path for path in Path(models_dir).glob(f"{name}-v*.card.json") if version_number(path, name) is not None]
    return max(cards, key=lambda path: version_number(path, name), default=None)


def read_card(path: str | Path) -> dict:
    """Read a ``.card.json`` and check the keys the registry relies on; ``file`` stays relative to the card."""
    card = json.loads(Path(path).read_text())
    missing = [key for key in REQUIRED_KEYS if key not in card]
    if missing:
        raise ValueError(f"{path}: model card lacks {', '.join(missing)}")
    return card


def write_card(card: dict, json_path: str | Path, md_path: str | Path) -> None:
    Path(json_path).write_text(json.dumps(card, indent=2, sort_keys=False) + "\n")
    Path(md_path).write_text(render_markdown(card))


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _metrics_table(block: dict, classes: list[str]) -> list[str]:
    lines = ["| class | precision | recall | F1 | n |", "| --- | --- | --- | --- | --- |"]
    for name in classes:
        row = block["per_class"][name]
        lines.append(f"| {name} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | {row['support']} |")
    return lines


def _bar_lines(bar: dict | None) -> list[str]:
    if bar is None:
        return []
    if not bar["misses"]:
        return ["- It meets the bar of the model issue on every figure.", ""]
    return ["- It misses the bar of the model issue on:", *[f"  - {miss}" for miss in bar["misses"]], ""]


def _ci(ci: dict, key: str) -> str:
    low, high = ci.get(key, ["?", "?"])
    return f"{low:.3f}–{high:.3f}"


def _header_lines(card: dict) -> list[str]:
    """Title, intended use, inputs and outputs with both needs-review thresholds."""
    novelty = (
        [
            f"- Novelty threshold: **{card['novelty_threshold']:.3f}** (chosen on val as a fixed budget: about "
            f"{_pct(card.get('training', {}).get('novelty_false_alarm', 0.02))} of fetal images fall below it). "
            "The model's second output is the cosine similarity of the image's features to the nearest "
            "training image's; below the threshold the image is unlike anything the model was trained on and "
            "is flagged for a human, however confident the softmax is.",
        ]
        if card.get("novelty_threshold") is not None
        else []
    )
    return [
        f"# Model card: {card['name']} v{card['version']}",
        "",
        f"File `{card['file']}` (sha256 `{card['sha256']}`), {card.get('architecture', '')}.",
        "",
        "## Intended use",
        "",
        card.get("intended_use", ""),
        "",
        "## Inputs and outputs",
        "",
        f"- Classes, in output order: {', '.join(f'`{c}`' for c in card['classes'])}.",
        f"- Input: {card.get('preprocessing', '')}",
        f"- Needs-review threshold: **{card['needs_review_threshold']:.2f}** (chosen on val; a prediction whose "
        "top probability is below it is flagged for a human).",
        *novelty,
        "",
    ]


def _test_lines(metrics: dict, classes: list[str]) -> list[str]:
    """Test figures with their intervals, the bar, per class, the confusion matrix and per source."""
    test = metrics["test"]
    ci = test.get("ci", {})
    lines = [
        "## Test results (no choice was made on them; see docs/model.md for the development runs)",
        "",
        f"- Accuracy **{test['accuracy']:.3f}** (95% CI {_ci(ci, 'accuracy')}), macro-F1 **{test['macro_f1']:.3f}** "
        f"(95% CI {_ci(ci, 'macro_f1')}), n = {test['n']} fetal images; CI: {ci.get('method', '')}.",
        "",
        *_bar_lines(metrics.get("bar")),
        *_metrics_table(test, classes),
        "",
        "Confusion matrix (rows true, columns predicted, order as the classes):",
        "",
        "```",
        *[" ".join(f"{v:4d}" for v in row) for row in test["confusion_matrix"]],
        "```",
        "",
        "Per source:",
        "",
        "| source | n | accuracy | macro-F1 | lowest recall |",
        "| --- | --- | --- | --- | --- |",
    ]
    for source, block in test.get("per_source", {}).items():
        lowest = min(block["per_class"].values(), key=lambda row: row["recall"] if row["support"] else 2)
        lines.append(
            f"| {source} | {block['n']} | {block['accuracy']:.3f} | {block['macro_f1']:.3f} | {lowest['recall']:.3f} |"
        )
    return lines


def _review_lines(metrics: dict) -> list[str]:
    """What the needs-review flag catches out of distribution and costs on fetal images; the val figures."""
    lines = [
        "",
        "Out of distribution (share flagged for review; in brackets, by the confidence threshold alone):",
        "",
        "| kind | n | flagged |",
        "| --- | --- | --- |",
    ]
    for kind, block in metrics.get("ood_test", {}).items():
        alone = block.get("flagged_by_confidence_share")
        extra = f" ({_pct(alone)})" if alone is not None else ""
        lines.append(f"| {kind} | {block['n']} | {_pct(block['flagged_share'])}{extra} |")
    selective = metrics["test"].get("selective", {})
    if selective:
        lines += [
            "",
            f"Fetal test images flagged: {_pct(selective['flagged_share'])}; accuracy on those not flagged: "
            f"{selective['accuracy_accepted']:.3f}.",
        ]
    val = metrics.get("val", {})
    if val:
        lines += [
            "",
            f"Validation (used for early stopping and the threshold): accuracy {val['accuracy']:.3f}, "
            f"macro-F1 {val['macro_f1']:.3f}, n = {val['n']}.",
        ]
    return lines


def _data_lines(data: dict) -> list[str]:
    lines = ["", "## Data", "", "Images per split, source and label:", ""]
    for split, sources in data.get("counts", {}).items():
        for source, labels in sources.items():
            lines.append(f"- {split} / {source}: " + ", ".join(f"{k} {v}" for k, v in labels.items()))
    lines += ["", "Citations (both CC BY 4.0):", ""]
    lines += [f"- {c}" for c in data.get("citations", [])]
    return lines


def _training_lines(training: dict) -> list[str]:
    lines = ["", "## Training", ""]
    for key, value in training.items():
        if key != "members":
            lines.append(f"- {key}: `{value}`")
            continue
        for member in value:
            curve = ", ".join(f"{row['val_loss']:.3f}" for row in member.get("history", []))
            lines.append(
                f"- member seed {member['seed']}: {member['kind']}, val loss {member['val_loss']:.4f} "
                f"(per epoch: {curve})"
            )
    return lines


def _runtime_lines(card: dict) -> list[str]:
    """The other files that run the same model (``runtimes``): the worker prefers them to the ``.keras``."""
    litert = (card.get("runtimes") or {}).get("litert")
    if litert is None:
        return []
    return [
        "",
        "## Runtimes",
        "",
        f"- LiteRT: `{litert['file']}` ({litert['bytes'] / 1e6:.1f} MB, float32, BatchNorm folded, sha256 "
        f"`{litert['sha256'][:12]}…`), what the worker runs (no TensorFlow in its process); max abs difference "
        f"of its outputs from the Keras model's {litert['max_abs_diff_vs_keras']:.1e} on {litert['checked_on']}. "
        "Keras stays for Grad-CAM heatmaps and as the fallback.",
    ]


def render_markdown(card: dict) -> str:
    lines = [
        *_header_lines(card),
        *_test_lines(card["metrics"], card["classes"]),
        *_review_lines(card["metrics"]),
        *_data_lines(card.get("data", {})),
        *_training_lines(card.get("training", {})),
        *_runtime_lines(card),
        "",
        "## Known limits",
        "",
        *[f"- {item}" for item in card.get("limits", [])],
        "",
        "## Library versions",
        "",
        *[f"- {k} {v}" for k, v in card.get("library_versions", {}).items()],
    ]
    return "\n".join(lines) + "\n"
