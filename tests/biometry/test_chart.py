"""The head circumference growth chart (issue 21, item 5): the SVG itself, the points it is drawn from, and the
pages and report that show it.

The standard's numbers are checked against the published tables in test_growth.py; here the check is that the
chart puts them where they belong: each curve's point, read back from the SVG's coordinates, is the standard's
value at that age.
"""

from __future__ import annotations

import datetime
import re
import xml.etree.ElementTree as ET

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from biometry.chart import (
    CHART_CENTILES,
    HC_AXIS_MM,
    ChartPoint,
    chart_frame,
    growth_chart_svg,
)
from biometry.growth_points import head_growth_points, patient_growth_chart, study_growth_chart
from biometry.ml.growth import hc_for_centile, hc_median_mm
from biometry.models import Measurement, MeasurementJob
from patients import services as patient_services
from tests.biometry.test_growth import PUBLISHED_CENTILES, TABLE_CENTILES, TABLE_ROUNDING_MM
from tests.factories import PatientFactory, StudyFactory
from tests.images import png_bytes

SVG = "{http://www.w3.org/2000/svg}"
# SVG coordinates carry two decimals: half a hundredth of a pixel is this many mm on the default chart's HC axis.
COORDINATE_MM = 0.005 * (HC_AXIS_MM[1] - HC_AXIS_MM[0]) / (chart_frame().bottom - chart_frame().top)


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # noqa: S314 (our own SVG: the point is that it parses)


def _xy(points_attribute: str) -> list[tuple[float, float]]:
    return [tuple(float(v) for v in pair.split(",")) for pair in points_attribute.split()]


def _curve(root: ET.Element, centile: float) -> list[tuple[float, float]]:
    (line,) = [e for e in root.iter(f"{SVG}polyline") if e.get("data-centile") == f"{centile:g}"]
    return _xy(line.get("points"))


def _hc_at(root: ET.Element, centile: float, ga_days: int) -> float:
    """The curve's HC at an age, read back from the SVG's coordinates through the chart's axes."""
    frame = chart_frame()
    x = frame.x(ga_days)
    (y,) = [y for px, y in _curve(root, centile) if abs(px - x) < 0.006]
    low, high = HC_AXIS_MM
    return low + (frame.bottom - y) / (frame.bottom - frame.top) * (high - low)


class TestGrowthChartSvg:
    def test_it_is_well_formed_xml_and_an_accessible_image(self):
        root = _parse(growth_chart_svg(points=[ChartPoint(140, 172.0)], current=ChartPoint(168, 210.0)))

        assert root.tag == f"{SVG}svg"
        assert root.get("role") == "img"
        labelled_by = root.get("aria-labelledby").split()
        ids = {e.get("id"): e for e in root.iter() if e.get("id")}
        assert [ids[name].tag for name in labelled_by] == [f"{SVG}title", f"{SVG}desc"]
        assert "INTERGROWTH-21st" in ids[labelled_by[0]].text

    def test_it_needs_no_script_style_or_outside_resource(self):
        svg = growth_chart_svg(points=[ChartPoint(140, 172.0)])
        root = _parse(svg)

        tags = {e.tag.removeprefix(SVG) for e in root.iter()}
        assert not tags & {"script", "style", "image", "foreignObject", "a", "use"}
        assert not any(name == "style" or name.startswith("on") for e in root.iter() for name in e.attrib)
        assert "url(" not in svg and "href" not in svg

    def test_the_curves_at_20_weeks_are_the_standards_centiles(self):
        root = _parse(growth_chart_svg(points=[]))

        assert {float(e.get("data-centile")) for e in root.iter(f"{SVG}polyline") if e.get("data-centile")} == set(
            CHART_CENTILES
        )
        frame = chart_frame()
        for centile in CHART_CENTILES:
            (point,) = [(x, y) for x, y in _curve(root, centile) if abs(x - frame.x(140)) < 0.006]
            assert point[1] == pytest.approx(frame.y(hc_for_centile(centile=centile, ga_days=140)), abs=0.006)
        assert _hc_at(root, 50.0, 140) == pytest.approx(hc_median_mm(140), abs=COORDINATE_MM)

    @pytest.mark.parametrize(("week", "row"), [PUBLISHED_CENTILES[i] for i in (0, 6, 12, 19, 26)])
    def test_the_curves_pass_through_the_published_centiles(self, week, row):
        root = _parse(growth_chart_svg(points=[]))
        published = dict(zip(TABLE_CENTILES, row, strict=True))

        for centile in CHART_CENTILES:
            assert _hc_at(root, centile, 7 * week) == pytest.approx(
                published[int(centile)], abs=TABLE_ROUNDING_MM + COORDINATE_MM
            )

    def test_the_points_are_joined_in_gestational_age_order_with_this_study_highlighted(self):
        frame = chart_frame()
        earlier = [ChartPoint(200, 240.0, "c"), ChartPoint(130, 150.0, "a"), ChartPoint(250, 300.0, "d")]
        current = ChartPoint(170, 200.0, "b")

        root = _parse(growth_chart_svg(points=earlier, current=current))

        (series,) = [e for e in root.iter(f"{SVG}polyline") if e.get("class") == "series"]
        xs = [x for x, _ in _xy(series.get("points"))]
        assert xs == pytest.approx([frame.x(d) for d in (130, 170, 200, 250)], abs=0.006)
        assert xs == sorted(xs)
        (highlight,) = [e for e in root.iter(f"{SVG}g") if e.get("class") == "point current"]
        centre = highlight.find(f"{SVG}circle")
        assert (float(centre.get("cx")), float(centre.get("cy"))) == pytest.approx(
            (frame.x(170), frame.y(200.0)), abs=0.006
        )
        assert len([e for e in root.iter(f"{SVG}circle") if e.get("class") == "point"]) == 3

    def test_points_outside_14_to_40_weeks_are_listed_but_not_drawn(self):
        inside, early, late = ChartPoint(140, 172.5, "x"), ChartPoint(84, 70.0, "y"), ChartPoint(287, 340.0, "z")

        root = _parse(growth_chart_svg(points=[inside, early, late]))

        desc = root.find(f"{SVG}desc").text
        assert "Study (x): 20+0 weeks, HC 172.5 mm, 50th centile." in desc
        not_plotted = desc.split("Not plotted")[1]
        assert "Study (y): 12+0 weeks, HC 70.0 mm" in not_plotted
        assert "Study (z): 41+0 weeks, HC 340.0 mm" in not_plotted
        assert "centile" not in not_plotted  # the standard has none outside its range
        assert len([e for e in root.iter(f"{SVG}circle") if e.get("class") == "point"]) == 1
        assert not [e for e in root.iter(f"{SVG}polyline") if e.get("class") == "series"]

    def test_text_is_escaped(self):
        svg = growth_chart_svg(points=[ChartPoint(140, 172.0, '<script>alert("x")</script> & co')])

        root = _parse(svg)
        assert "<script>" not in svg
        assert '<script>alert("x")</script> & co' in root.find(f"{SVG}desc").text

    def test_extreme_centiles_are_said_in_words(self):
        desc = _parse(growth_chart_svg(points=[ChartPoint(140, 140.0)])).find(f"{SVG}desc").text

        assert "HC 140.0 mm, below the 1st centile" in desc

    def test_with_no_point_it_says_so(self):
        desc = _parse(growth_chart_svg(points=[])).find(f"{SVG}desc").text

        assert "No measurement to plot" in desc


# ---- The points: one per study with a GA and an accepted, calibrated HC --------------------------------------


def _measured_image(
    study, *, hc_mm, state="accepted", reviewer=None, pixel_size_mm=0.15, reviewed_at=None, seed=0, flags=()
):
    """An uploaded image of ``study`` with a measurement in ``state`` (arranged directly: the worker and the
    review service are another part's tests)."""
    image = patient_services.image_upload(
        study=study, data=png_bytes(64, 48, seed=seed), filename=f"head-{seed}.png", uploaded_by=study.created_by
    ).image
    job = MeasurementJob.objects.create(
        image=image, model_version="fetal-head-test", status=MeasurementJob.Status.SUCCEEDED, queued_at=timezone.now()
    )
    reviewed = state != "suggested"
    Measurement.objects.create(
        job=job,
        image=image,
        center_x=32,
        center_y=24,
        semi_major=20,
        semi_minor=15,
        angle_deg=0,
        hc_px=hc_mm / (pixel_size_mm or 0.15),
        pixel_size_mm=pixel_size_mm,
        calibration_source="upload" if pixel_size_mm else "",
        hc_mm=hc_mm if pixel_size_mm else None,
        flags=list(flags),
        needs_review=bool(flags),
        review_state=state,
        reviewed_by=reviewer if reviewed else None,
        reviewed_at=(reviewed_at or timezone.now()) if reviewed else None,
    )
    return image


def _study(patient, *, exam_date, weeks, days=0):
    return StudyFactory(
        patient=patient,
        exam_date=exam_date,
        gestational_age_weeks=weeks,
        gestational_age_days=None if weeks is None else days,
        created_by=patient.created_by,
    )


@pytest.fixture
def patient(sonographer):
    return PatientFactory(clinic=sonographer.clinic, created_by=sonographer)


@pytest.mark.django_db
class TestHeadGrowthPoints:
    def test_one_point_per_study_with_a_ga_and_an_accepted_calibrated_hc(self, patient, sonographer, clinician):
        first = _study(patient, exam_date=datetime.date(2026, 1, 10), weeks=18, days=2)
        second = _study(patient, exam_date=datetime.date(2026, 2, 7), weeks=22, days=2)
        _measured_image(first, hc_mm=150.0, reviewer=clinician, seed=1)
        _measured_image(second, hc_mm=195.0, state="adjusted", reviewer=clinician, seed=2)
        no_ga = _study(patient, exam_date=datetime.date(2026, 3, 7), weeks=None)
        _measured_image(no_ga, hc_mm=230.0, reviewer=clinician, seed=3)
        open_questions = _study(patient, exam_date=datetime.date(2026, 4, 4), weeks=30)
        _measured_image(open_questions, hc_mm=280.0, state="suggested", seed=4)
        _measured_image(open_questions, hc_mm=281.0, state="rejected", reviewer=clinician, seed=5)
        _measured_image(open_questions, hc_mm=283.0, pixel_size_mm=None, reviewer=clinician, seed=6)  # px only
        _measured_image(open_questions, hc_mm=284.0, reviewer=clinician, seed=8, flags=["not_brain"])
        excluded = _measured_image(open_questions, hc_mm=282.0, reviewer=clinician, seed=7)
        patient_services.image_exclude(image=excluded, excluded_by=clinician, reason="test_image")

        points = head_growth_points(user=sonographer, patient_id=patient.id)

        assert [(p.study.id, p.ga_days, p.hc_mm) for p in points] == [(first.id, 128, 150.0), (second.id, 156, 195.0)]

    def test_the_measurement_reviewed_last_stands_for_its_study(self, patient, sonographer, clinician):
        study = _study(patient, exam_date=datetime.date(2026, 1, 10), weeks=20)
        now = timezone.now()
        _measured_image(study, hc_mm=171.0, reviewer=clinician, reviewed_at=now, seed=1)
        _measured_image(study, hc_mm=168.0, reviewer=clinician, reviewed_at=now - datetime.timedelta(hours=1), seed=2)

        (point,) = head_growth_points(user=sonographer, patient_id=patient.id)

        assert point.hc_mm == 171.0

    def test_one_query_whatever_the_number_of_studies(self, patient, sonographer, clinician):
        for n in range(6):
            study = _study(patient, exam_date=datetime.date(2026, 1, 1) + datetime.timedelta(weeks=n), weeks=16 + n)
            _measured_image(study, hc_mm=130.0 + 12 * n, reviewer=clinician, seed=n)

        with CaptureQueriesContext(connection) as queries:
            points = head_growth_points(user=sonographer, patient_id=patient.id)
            [(p.study.exam_date, p.measurement.hc_mm) for p in points]

        assert len(points) == 6
        assert len(queries) == 1

    def test_another_clinics_user_gets_none(self, patient, clinician, south_sonographer):
        study = _study(patient, exam_date=datetime.date(2026, 1, 10), weeks=20)
        _measured_image(study, hc_mm=171.0, reviewer=clinician)

        assert head_growth_points(user=south_sonographer, patient_id=patient.id) == []
        assert patient_growth_chart(user=south_sonographer, patient_id=patient.id) is None


@pytest.mark.django_db
class TestStudyGrowthChart:
    def test_it_highlights_the_study_and_shows_only_earlier_studies(self, patient, sonographer, clinician):
        studies = [
            _study(patient, exam_date=datetime.date(2026, 1, 1) + datetime.timedelta(weeks=4 * n), weeks=18 + 4 * n)
            for n in range(3)
        ]
        for n, study in enumerate(studies):
            _measured_image(study, hc_mm=150.0 + 45 * n, reviewer=clinician, seed=n)

        chart = study_growth_chart(user=sonographer, study=studies[1])

        assert [p.study.id for p in chart.points] == [studies[0].id, studies[1].id]
        assert chart.current.study.id == studies[1].id
        root = _parse(str(chart.svg))
        assert len([e for e in root.iter(f"{SVG}g") if e.get("class") == "point current"]) == 1
        assert "exam 2026-03-26" not in root.find(f"{SVG}desc").text  # the later study is not on it

    def test_a_study_without_points_before_or_of_its_own_has_none(self, patient, sonographer):
        study = _study(patient, exam_date=datetime.date(2026, 1, 10), weeks=20)

        assert study_growth_chart(user=sonographer, study=study) is None


@pytest.mark.django_db
class TestPagesShowTheChart:
    def test_the_patient_page_and_the_study_page(self, client, patient, sonographer, clinician):
        first = _study(patient, exam_date=datetime.date(2026, 1, 10), weeks=18)
        second = _study(patient, exam_date=datetime.date(2026, 2, 7), weeks=22)
        _measured_image(first, hc_mm=150.0, reviewer=clinician, seed=1)
        _measured_image(second, hc_mm=195.0, reviewer=clinician, seed=2)
        client.force_login(sonographer)

        patient_page = client.get(reverse("patient-detail", kwargs={"patient_id": patient.id})).content.decode()
        study_page = client.get(reverse("study-detail", kwargs={"study_id": second.id})).content.decode()

        for page in (patient_page, study_page):
            svg = re.search(r'<svg [^>]*class="growth-chart".*?</svg>', page, re.S).group(0)
            root = _parse(svg)
            assert root.get("class") == "growth-chart"
            assert len([e for e in root.iter() if "point" in (e.get("class") or "").split()]) == 2
        assert "this study is the larger red point" in study_page
        assert "Head circumference growth" in patient_page

    def test_a_page_without_points_has_no_chart(self, client, study, sonographer):
        client.force_login(sonographer)

        page = client.get(reverse("study-detail", kwargs={"study_id": study.id})).content.decode()

        assert "growth-chart" not in page


@pytest.mark.django_db
class TestReportHeadBiometry:
    def test_the_report_has_the_section_with_figures_sources_and_chart(self, patient, clinician):
        from patients.report import study_report_pdf
        from tests.patients.test_report import _pdf_text

        clinician.first_name, clinician.last_name = "Inès", "Ødegård"
        clinician.save()
        earlier = _study(patient, exam_date=datetime.date(2025, 12, 1), weeks=14, days=1)
        _measured_image(earlier, hc_mm=100.0, reviewer=clinician, seed=1)
        too_early = _study(patient, exam_date=datetime.date(2025, 11, 1), weeks=12, days=0)
        _measured_image(too_early, hc_mm=70.0, reviewer=clinician, seed=5)
        study = _study(patient, exam_date=datetime.date(2026, 1, 15), weeks=20, days=3)
        image = _measured_image(study, hc_mm=175.0, reviewer=clinician, seed=2)
        Measurement.objects.filter(image=image).update(bpd_mm=45.24, ofd_mm=60.0)
        _measured_image(study, hc_mm=300.0, pixel_size_mm=None, reviewer=clinician, seed=3)
        _measured_image(study, hc_mm=180.0, state="suggested", seed=4)
        patient_services.study_sign_off(study=study, signed_by=clinician, acknowledged=True)

        text = _pdf_text(study_report_pdf(study=study, user=clinician))

        section = text.partition("Head biometry")[2]
        for expected in (
            "Accepted",
            "Inès Ødegård",
            "175.0 mm",
            "45.2 mm",  # one decimal
            "60.0 mm",
            "20+1 weeks",  # GA from HC 175.0 mm: 141.5 days
            "centile 36.2",  # for the study's own 20+3 weeks
            "not calibrated",
            "Not reviewed at sign-off: not reported.",
            "Papageorghiou et al., Ultrasound Obstet Gynecol 2016",
            "Papageorghiou et al., Lancet 2014",
            "Gestational age (weeks)",  # the chart's axis
            "Not drawn, outside the standard's 14+0 to 40+0 weeks or the chart's 50 to 400 mm: exam 2025-11-01 "
            "(12w0d, HC 70.0 mm)",
        ):
            assert expected in section, expected
        assert "180.0 mm" not in section

    def test_a_study_without_measurements_has_no_section(self, study, clinician):
        from patients.report import study_report_pdf
        from tests.patients.test_report import _pdf_text

        patient_services.study_sign_off(study=study, signed_by=clinician, acknowledged=True)

        assert "Head biometry" not in _pdf_text(study_report_pdf(study=study, user=clinician))
