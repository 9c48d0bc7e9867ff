"""The segmenter's model card: JSON for loading, Markdown (rendered from it) for people."""

from __future__ import annotations

import json
from pathlib import Path


def write_card(card: dict, json_path: str | Path) -> Path:
    """Write ``<name>.card.json`` and ``<name>.card.md`` beside it; return the Markdown's path."""
    json_path = Path(json_path)
    json_path.write_text(json.dumps(card, indent=2) + "\n")
    md_path = json_path.with_name(json_path.name.removesuffix(".json") + ".md")
    md_path.write_text(render_markdown(card))
    return md_path


def _ci(summary: dict, key: str, digits: int) -> str:
    interval = summary.get("ci95", {}).get(key)
    return f" (95% CI {interval[0]:.{digits}f}–{interval[1]:.{digits}f})" if interval else ""


def _figure_lines(title: str, summary: dict) -> list[str]:
    if not summary:
        return []
    lines = [
        f"### {title}: {summary['n_images']} images of {summary['n_subjects']} subjects",
        "",
        f"- HC mean absolute difference to the sonographer **{summary['hc_mae_mm']:.2f} mm**"
        f"{_ci(summary, 'hc_mae_mm', 2)}, median {summary['hc_median_abs_mm']:.2f} mm, 90th percentile "
        f"**{summary['hc_p90_mm']:.2f} mm**{_ci(summary, 'hc_p90_mm', 2)}, max {summary['hc_max_abs_mm']:.2f} mm, "
        f"mean signed {summary['hc_mean_signed_mm']:+.2f} mm; no ellipse on {summary['no_ellipse']}.",
        f"- Dice of the segmentation with the annotation mask **{summary['dice_mean']:.4f}**"
        f"{_ci(summary, 'dice_mean', 4)} (lowest {summary['dice_min']:.4f}).",
    ]
    for axis in ("bpd", "ofd"):
        block = summary[axis]
        if block.get("n"):
            low, high = block["limits_of_agreement_mm"]
            lines.append(
                f"- {axis.upper()} against the ellipse fitted to the annotation mask (same inset): mean absolute "
                f"{block['mean_abs_mm']:.2f} mm, mean signed {block['mean_signed_mm']:+.2f} mm, 90th percentile "
                f"{block['p90_abs_mm']:.2f} mm, 95% limits of agreement {low:+.2f} to {high:+.2f} mm."
            )
    lines.append(
        f"- Flags raised: {summary['flagged'] or 'none'}. Segmentation + ellipse + measurement: median "
        f"{summary['total_ms_median']:.0f} ms per image (network {summary['inference_ms_median']:.0f} ms)"
        f"{' on ' + summary['timed_on'] if summary.get('timed_on') else ''}."
    )
    if summary.get("ci_method"):
        lines.append(f"- CIs: {summary['ci_method']}.")
    misses = summary.get("bar", {}).get("misses")
    if misses is not None:
        lines.append("- Issue 21's bar: " + ("met on every figure." if not misses else "MISSED: " + "; ".join(misses)))
    return [*lines, ""]


def render_markdown(card: dict) -> str:
    metrics, training, data = card.get("metrics", {}), card.get("training", {}), card.get("data", {})
    litert = (card.get("runtimes") or {}).get("litert")
    inset = card.get("inset", {})
    lines = [
        f"# Model card: {card['name']} v{card['version']}",
        "",
        f"File `{card['file']}` (sha256 `{card['sha256']}`).",
        "",
        "## Intended use",
        "",
        "Segment the fetal skull on a trans-thalamic brain-plane ultrasound image so that an ellipse gives head "
        "circumference, BPD and OFD, as a suggestion a clinician reviews.",
        "",
        "## Model",
        "",
        f"- Architecture: {card.get('architecture', '')}.",
        f"- Input: {card.get('preprocessing', '')}.",
        f"- Output to ellipse: {card.get('postprocessing', '')}.",
        f"- Annotation inset: **{card['inset_px']} px** at 800 px wide (sd {inset.get('sd_px', 0):.3f} px over "
        f"{inset.get('n', '?')} train masks): the filled HC18 masks' edge lies that far outside the sonographer's "
        "ellipse (docs/biometry.md).",
        f"- Conventions: {card.get('conventions', '')}",
        "",
        "## Results",
        "",
        *_figure_lines(card.get("test_heading", "Test (held out; no choice was made on it)"), metrics.get("test", {})),
        *_figure_lines("Val (used to pick the epoch; the inset's residual bias)", metrics.get("val", {})),
        "## Data",
        "",
        f"- {data.get('source', '')}",
        f"- Split: {data.get('split_rule', '')}",
        *[f"- {split}: {c['images']} images, {c['subjects']} subjects" for split, c in data.get("counts", {}).items()],
        "",
        "## Training",
        "",
        *[f"- {key}: `{value}`" for key, value in training.items() if key != "history"],
        "",
    ]
    if litert:
        lines += [
            "## Runtimes",
            "",
            f"- LiteRT: `{litert['file']}` ({litert['bytes'] / 1e6:.1f} MB, float32, sha256 "
            f"`{litert['sha256'][:12]}…`), what the worker runs; max abs difference of its probabilities from Keras "
            f"{litert['max_abs_diff_vs_keras']:.1e} on {litert['checked_on']}.",
            "",
        ]
    lines += ["## Known limits", "", *[f"- {item}" for item in card.get("limits", [])], ""]
    lines += ["## Library versions", "", *[f"- {k} {v}" for k, v in card.get("library_versions", {}).items()]]
    return "\n".join(lines) + "\n"
