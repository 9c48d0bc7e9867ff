"""The head circumference growth chart: hand-written SVG text, drawn on the server (issue 21, item 5).

x is gestational age in weeks (14 to 40, the INTERGROWTH-21st fetal standard's range), y is HC in mm; the
3rd, 10th, 50th, 90th and 97th centile curves come from ``biometry.ml.growth.hc_centile_curves``. The patient's
measurements are points joined by a line in gestational-age order; the measurement the page is about is
highlighted. The SVG needs no script, no stylesheet and no font file (colours and lines are presentation
attributes, text uses the generic ``sans-serif``), so it is safe inline under the site's CSP and in the
WeasyPrint report. It is an image to assistive technology (``role="img"``) whose ``<title>`` names it and whose
``<desc>`` lists every point in words, including those the chart cannot place (outside 14+0 to 40+0 weeks or
outside its HC axis), which are listed but not drawn: the standard says nothing there, and neither does the chart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from biometry.ml.growth import (
    CHART_CENTILES,
    GA_MAX_DAYS,
    GA_MIN_DAYS,
    OutsideStandard,
    hc_centile,
    hc_centile_curves,
    weeks_and_days,
)

HC_AXIS_MM = (50.0, 400.0)  # issue 21's plausible range: a measurement outside it is flagged, not charted
HC_TICK_MM = 50
WEEK_TICK = 2
DEFAULT_WIDTH = 640
DEFAULT_HEIGHT = 400
# Plot area margins (left, top, right, bottom) in SVG user units: room for tick labels and axis titles.
MARGINS = (58.0, 14.0, 34.0, 46.0)
LABEL_GAP = 10.0  # the least vertical distance between two curve names
# The curves, told apart by line pattern as well as weight (not by colour alone).
CURVE_STYLE = {
    3.0: {"stroke-dasharray": "2 3", "stroke-width": "1"},
    10.0: {"stroke-dasharray": "6 4", "stroke-width": "1"},
    50.0: {"stroke-width": "2"},
    90.0: {"stroke-dasharray": "6 4", "stroke-width": "1"},
    97.0: {"stroke-dasharray": "2 3", "stroke-width": "1"},
}
CURVE_COLOUR = "#5b6770"
SERIES_COLOUR = "#1f4e79"
CURRENT_COLOUR = "#b3261e"


@dataclass(frozen=True)
class ChartPoint:
    """One HC measurement at a gestational age; ``label`` says whose (e.g. the study's exam date)."""

    ga_days: float
    hc_mm: float
    label: str = ""


@dataclass(frozen=True)
class _Frame:
    """Maps gestational days and HC mm to SVG coordinates inside the plot area."""

    left: float
    top: float
    right: float
    bottom: float

    def x(self, ga_days: float) -> float:
        return self.left + (ga_days - GA_MIN_DAYS) / (GA_MAX_DAYS - GA_MIN_DAYS) * (self.right - self.left)

    def y(self, hc_mm: float) -> float:
        low, high = HC_AXIS_MM
        return self.bottom - (hc_mm - low) / (high - low) * (self.bottom - self.top)

    def holds(self, point: ChartPoint) -> bool:
        return GA_MIN_DAYS <= point.ga_days <= GA_MAX_DAYS and HC_AXIS_MM[0] <= point.hc_mm <= HC_AXIS_MM[1]


def chart_frame(*, width: float = DEFAULT_WIDTH, height: float = DEFAULT_HEIGHT) -> _Frame:
    """The plot area of a chart of this size (tests map the standard's values through it)."""
    left, top, right, bottom = MARGINS
    return _Frame(left=left, top=top, right=width - right, bottom=height - bottom)


def chart_holds(point: ChartPoint) -> bool:
    """Whether the chart draws the point (inside 14+0 to 40+0 weeks and its HC axis); else it only lists it."""
    return chart_frame().holds(point)


def growth_chart_svg(
    *,
    points: Sequence[ChartPoint],
    current: ChartPoint | None = None,
    width: int = DEFAULT_WIDTH,
    height: int = DEFAULT_HEIGHT,
    chart_id: str = "growth-chart",
) -> str:
    """The chart as an ``<svg>`` element (text). ``points`` are the patient's other measurements (earlier
    studies), ``current`` the one to highlight; all are joined in gestational-age order. ``chart_id`` prefixes
    the element ids, so two charts can share a page."""
    frame = chart_frame(width=width, height=height)
    ident = escape(chart_id)
    others = [p for p in points if p != current]
    series = sorted([*others, *([current] if current else [])], key=lambda p: (p.ga_days, p.hc_mm))
    plotted = [p for p in series if frame.holds(p)]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="growth-chart" id="{ident}" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'aria-labelledby="{ident}-title {ident}-desc" font-family="sans-serif" font-size="11">',
        f'<title id="{ident}-title">Head circumference for gestational age, INTERGROWTH-21st</title>',
        f'<desc id="{ident}-desc">{escape(_description(series, current, frame))}</desc>',
        *_axes(frame),
        *_curves(frame),
        *_legend(frame, with_current=current is not None and frame.holds(current)),
        *_series(plotted, current, frame),
        "</svg>",
    ]
    return "\n".join(parts)


def _axes(frame: _Frame) -> list[str]:
    parts = [
        f'<rect class="plot-area" x="{frame.left}" y="{frame.top}" width="{frame.right - frame.left:.2f}" '
        f'height="{frame.bottom - frame.top:.2f}" fill="#ffffff" stroke="#888888" stroke-width="1"/>'
    ]
    for week in range(GA_MIN_DAYS // 7, GA_MAX_DAYS // 7 + 1, WEEK_TICK):
        x = frame.x(week * 7)
        parts.append(f'<line x1="{x:.2f}" y1="{frame.top}" x2="{x:.2f}" y2="{frame.bottom}" stroke="#eeeeee"/>')
        parts.append(
            f'<text class="x-tick" x="{x:.2f}" y="{frame.bottom + 14:.2f}" text-anchor="middle" '
            f'fill="#333333">{week}</text>'
        )
    low, high = (int(v) for v in HC_AXIS_MM)
    for hc in range(low, high + 1, HC_TICK_MM):
        y = frame.y(hc)
        parts.append(f'<line x1="{frame.left}" y1="{y:.2f}" x2="{frame.right}" y2="{y:.2f}" stroke="#eeeeee"/>')
        parts.append(
            f'<text class="y-tick" x="{frame.left - 6:.2f}" y="{y + 4:.2f}" text-anchor="end" fill="#333333">'
            f"{hc}</text>"
        )
    middle_x, middle_y = (frame.left + frame.right) / 2, (frame.top + frame.bottom) / 2
    parts.append(
        f'<text class="x-label" x="{middle_x:.2f}" y="{frame.bottom + 34:.2f}" text-anchor="middle" '
        f'fill="#111111">Gestational age (weeks)</text>'
    )
    parts.append(
        f'<text class="y-label" x="16" y="{middle_y:.2f}" text-anchor="middle" fill="#111111" '
        f'transform="rotate(-90 16 {middle_y:.2f})">Head circumference (mm)</text>'
    )
    return parts


def _curves(frame: _Frame) -> list[str]:
    parts, ends = [], []
    for centile, curve in hc_centile_curves(CHART_CENTILES, step_days=1).items():
        path = " ".join(f"{frame.x(days):.2f},{frame.y(hc):.2f}" for days, hc in curve)
        attributes = _attributes({"stroke": CURVE_COLOUR, "fill": "none", **CURVE_STYLE[centile]})
        parts.append(
            f'<polyline class="centile" data-centile="{centile:g}" points="{path}" {attributes}>'
            f"<title>{_ordinal(centile)} centile</title></polyline>"
        )
        ends.append((frame.y(curve[-1][1]), centile))
    # Each curve named at its 40-week end, right of the plot, nudged apart where the curves run close.
    ends.sort()
    previous = -math.inf
    for y, centile in ends:
        y = max(y + 3, previous + LABEL_GAP)
        previous = y
        parts.append(
            f'<text class="centile-label" x="{frame.right + 3:.2f}" y="{y:.2f}" font-size="9" '
            f'fill="{CURVE_COLOUR}">{_ordinal(centile)}</text>'
        )
    return parts


def _legend(frame: _Frame, *, with_current: bool) -> list[str]:
    x, y = frame.left + 10, frame.top + 14
    rows = [
        (f'<line x1="0" y1="0" x2="22" y2="0" stroke="{CURVE_COLOUR}" stroke-width="2"/>', "50th centile"),
        (
            f'<line x1="0" y1="0" x2="22" y2="0" stroke="{CURVE_COLOUR}" stroke-dasharray="6 4"/>',
            "10th and 90th centiles",
        ),
        (
            f'<line x1="0" y1="0" x2="22" y2="0" stroke="{CURVE_COLOUR}" stroke-dasharray="2 3"/>',
            "3rd and 97th centiles",
        ),
        (
            f'<line x1="0" y1="0" x2="22" y2="0" stroke="{SERIES_COLOUR}" stroke-width="1.5"/>'
            f'<circle cx="11" cy="0" r="3.5" fill="{SERIES_COLOUR}"/>',
            "this patient's studies",
        ),
    ]
    if with_current:
        rows.append((_current_marker(11, 0), "this study"))
    parts = ['<g class="legend">']
    for row, (sample, text) in enumerate(rows):
        parts.append(
            f'<g transform="translate({x:.2f} {y + 15 * row:.2f})">{sample}'
            f'<text x="30" y="4" fill="#111111">{escape(text)}</text></g>'
        )
    parts.append("</g>")
    return parts


def _series(plotted: list[ChartPoint], current: ChartPoint | None, frame: _Frame) -> list[str]:
    parts = []
    if len(plotted) > 1:
        path = " ".join(f"{frame.x(p.ga_days):.2f},{frame.y(p.hc_mm):.2f}" for p in plotted)
        parts.append(
            f'<polyline class="series" points="{path}" fill="none" stroke="{SERIES_COLOUR}" stroke-width="1.5"/>'
        )
    for point in plotted:
        x, y = frame.x(point.ga_days), frame.y(point.hc_mm)
        tip = f"<title>{escape(_point_text(point, current))}</title>"
        if point is current:
            parts.append(f'<g class="point current">{_current_marker(x, y)}{tip}</g>')
        else:
            parts.append(
                f'<circle class="point" cx="{x:.2f}" cy="{y:.2f}" r="3.5" fill="{SERIES_COLOUR}">{tip}</circle>'
            )
    return parts


def _current_marker(x: float, y: float) -> str:
    return (
        f'<circle cx="{x:.2f}" cy="{y:.2f}" r="6" fill="{CURRENT_COLOUR}" stroke="#ffffff" stroke-width="1.5"/>'
        f'<circle cx="{x:.2f}" cy="{y:.2f}" r="8.5" fill="none" stroke="{CURRENT_COLOUR}" stroke-width="1"/>'
    )


def _description(series: list[ChartPoint], current: ChartPoint | None, frame: _Frame) -> str:
    """Every point in words: the ones drawn, then the ones the chart cannot place, saying why."""
    lines = [
        "Head circumference (mm) against gestational age (weeks, 14 to 40) with the INTERGROWTH-21st fetal "
        "standard's 3rd, 10th, 50th, 90th and 97th centile curves."
    ]
    if not series:
        lines.append("No measurement to plot: none has a gestational age and an accepted, calibrated HC.")
    lines.extend(f"{_point_text(p, current)}." for p in series if frame.holds(p))
    outside = [p for p in series if not frame.holds(p)]
    if outside:
        lines.append(
            f"Not plotted, outside the chart (14+0 to 40+0 weeks, HC {HC_AXIS_MM[0]:g} to {HC_AXIS_MM[1]:g} mm): "
            + "; ".join(_point_text(p, current) for p in outside)
            + "."
        )
    return " ".join(lines)


def _point_text(point: ChartPoint, current: ChartPoint | None) -> str:
    """ "This study (exam 2026-01-15): 20+3 weeks, HC 172.4 mm, 48th centile"."""
    who = "This study" if point is current else "Study"
    if point.label:
        who += f" ({point.label})"
    text = f"{who}: {weeks_and_days(point.ga_days)} weeks, HC {point.hc_mm:.1f} mm"
    try:
        centile = hc_centile(hc_mm=point.hc_mm, ga_days=point.ga_days)
    except OutsideStandard:
        return text
    if centile < 1:
        return f"{text}, below the 1st centile"
    if centile > 99:
        return f"{text}, above the 99th centile"
    return f"{text}, {_ordinal(round(centile))} centile"


def _ordinal(value: float) -> str:
    number = int(value)
    if not math.isclose(number, value):
        return f"{value:g}"
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def _attributes(values: dict[str, str]) -> str:
    return " ".join(f'{name}="{escape(value)}"' for name, value in values.items())
