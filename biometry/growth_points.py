"""A patient's head circumference over the pregnancy: one point per study, for the growth chart (issue 21, item 5).

A study gives a point when it has a gestational age (the study's own, which a first-trimester crown-rump length
dated: never the GA estimated from this HC, which would put the point on the median by construction) and a
measurement that ``biometry.presentation.chartable`` allows (a calibrated HC a clinician accepted or adjusted, on
an image still a brain plane). When a study has several, the one reviewed last stands for it. Excluded images
(wrong patient, test image) give none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from django.utils.safestring import SafeString, mark_safe

from biometry.chart import ChartPoint, chart_holds, growth_chart_svg
from biometry.models import Measurement
from biometry.presentation import chartable, study_ga_days
from fetalsite.accounts.selectors import scope_to_user

REVIEWED_STATES = (Measurement.ReviewState.ACCEPTED, Measurement.ReviewState.ADJUSTED)


class GrowthPoint(NamedTuple):
    study: Any  # patients.Study (patients sits above biometry: named, not imported)
    ga_days: int
    hc_mm: float
    measurement: Measurement

    def chart_point(self) -> ChartPoint:
        return ChartPoint(ga_days=self.ga_days, hc_mm=self.hc_mm, label=f"exam {self.study.exam_date:%Y-%m-%d}")


def head_growth_points(*, user, patient_id: int) -> list[GrowthPoint]:
    """The patient's points in exam order, one query whatever their number; another clinic's patient has none."""
    measurements = (
        scope_to_user(Measurement.objects.select_related("image__study"), user=user)
        .filter(
            image__study__patient_id=patient_id,
            image__study__gestational_age_weeks__isnull=False,
            image__excluded_at__isnull=True,
            review_state__in=REVIEWED_STATES,
            pixel_size_mm__isnull=False,
            hc_mm__isnull=False,
        )
        .order_by("image__study__exam_date", "image__study_id", "-reviewed_at", "-id")
    )
    points: dict[int, GrowthPoint] = {}
    for measurement in measurements:
        study = measurement.image.study
        # The first of each study is its last reviewed; ``chartable`` is the one rule of what may be charted.
        if study.id not in points and chartable(measurement):
            points[study.id] = GrowthPoint(study, study_ga_days(study), measurement.hc_mm, measurement)
    return list(points.values())


@dataclass(frozen=True)
class GrowthChart:
    svg: SafeString  # growth_chart_svg escapes every text it writes
    points: list[GrowthPoint]  # the points drawn or listed, in exam order
    current: GrowthPoint | None  # the page's own study's point, highlighted

    @property
    def not_drawn(self) -> list[GrowthPoint]:
        """Points the chart lists but cannot place (outside 14+0 to 40+0 weeks or its HC axis)."""
        return [p for p in self.points if not chart_holds(p.chart_point())]


def study_growth_chart(*, user, study) -> GrowthChart | None:
    """The chart for a study's page and report: its own point highlighted, and the patient's earlier studies
    (exam date before this one's; the same day, a lower id), so a signed report never changes with later
    studies. None when there is nothing to plot."""
    points = head_growth_points(user=user, patient_id=study.patient_id)
    current = next((p for p in points if p.study.id == study.id), None)
    earlier = [p for p in points if (p.study.exam_date, p.study.id) < (study.exam_date, study.id)]
    if current is None and not earlier:
        return None
    svg = growth_chart_svg(
        points=[p.chart_point() for p in earlier],
        current=current.chart_point() if current else None,
        chart_id=f"growth-chart-study-{study.id}",
    )
    return GrowthChart(svg=mark_safe(svg), points=[*earlier, *([current] if current else [])], current=current)  # noqa: S308


def patient_growth_chart(*, user, patient_id: int) -> GrowthChart | None:
    """The chart for a patient's page: every study's point, none highlighted. None when there is none."""
    points = head_growth_points(user=user, patient_id=patient_id)
    if not points:
        return None
    svg = growth_chart_svg(points=[p.chart_point() for p in points], chart_id=f"growth-chart-patient-{patient_id}")
    return GrowthChart(svg=mark_safe(svg), points=points, current=None)  # noqa: S308
