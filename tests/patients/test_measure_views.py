"""The study page's head measurement (issue 21, item 4): the ellipse over the image, the figures in mm or marked
"not calibrated", the review (accept, adjust, reject) for clinicians only, calibration by a drawn line, the
history, and the poll that refreshes a card when its measurement arrives.

Records are made through the real services: the upload, the classifier's brain prediction (which queues the
measurement job through its signal), and the measurement saved from a real ellipse fit to a drawn skull mask
(``biometry.ml.ellipse.ellipse_fit``), as the worker saves the segmenter's finding."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from biometry import services as biometry_services
from biometry.ml.ellipse import Ellipse, ellipse_fit
from biometry.ml.segmentation import HeadFinding
from biometry.models import Measurement, MeasurementJob
from patients import services as patient_services
from tests.api.conftest import classify, model_version  # noqa: F401 (a fixture)
from tests.images import png_bytes

pytestmark = pytest.mark.usefixtures("model_version")  # an active classifier model: uploads are classified

PARTIAL = {"HTTP_X_REQUESTED_WITH": "fetch"}
WIDTH, HEIGHT = 320, 240
SKULL = Ellipse(cx=160.0, cy=120.0, semi_major=90.0, semi_minor=70.0, angle=math.radians(20))


@pytest.fixture(autouse=True)
def head_model_card(settings, tmp_path):
    """A segmentation model card: queueing a measurement reads the model's name from it, nothing more."""
    card = tmp_path / "fetal-head-test.card.json"
    fields = dict(file="fetal-head-test-v1.keras", sha256="0" * 64, input_width=96, input_height=64, threshold=0.5)
    card.write_text(json.dumps({"name": "fetal-head-test", "version": 1, "inset_px": 0.0, **fields}))
    settings.BIOMETRY_MODEL_CARD = card
    return card


def brain_image(study, *, seed: int = 0, user=None):
    """An uploaded still the model called a brain plane: its measurement job is queued."""
    image = patient_services.image_upload(
        study=study,
        data=png_bytes(WIDTH, HEIGHT, seed=seed),
        filename=f"head-{seed}.png",
        uploaded_by=user or study.created_by,
    ).image
    classify(image, label="fetal_brain")
    return image


def measure(image, skull: Ellipse = SKULL) -> Measurement:
    """Run the image's queued measurement job as the worker does, with the ellipse fitted to ``skull``'s mask."""
    job = MeasurementJob.objects.get(image=image)
    biometry_services.measurement_job_start(job_id=job.id)
    fit = ellipse_fit(skull.raster((HEIGHT, WIDTH)))
    finding = HeadFinding(fit=fit, inference_ms=40.0, total_ms=55.0)
    biometry_services.measurement_save(job_id=job.id, finding=finding, runtime="keras")
    return Measurement.objects.get(job=job)


def measured_image(study, *, seed: int = 0):
    image = brain_image(study, seed=seed)
    return image, measure(image)


def card_html(html: str, image) -> str:
    match = re.search(rf'<article[^>]*id="image-{image.id}".*?</article>', html, re.S)
    assert match, f"no card for image {image.id}"
    return match.group(0)


def study_page(client, study) -> str:
    response = client.get(reverse("study-detail", args=[study.id]))
    assert response.status_code == 200
    return response.content.decode()


def ends_value(measurement: Measurement, *, move_first_by: float = 0.0) -> str:
    ellipse = Ellipse(
        measurement.center_x,
        measurement.center_y,
        measurement.semi_major,
        measurement.semi_minor,
        math.radians(measurement.angle_deg),
    )
    ends = list(ellipse.axis_ends())
    (x, y) = ends[0]
    # Along the long axis, outwards: the OFD grows by ``move_first_by`` pixels.
    ends[0] = (x - move_first_by * math.cos(ellipse.angle), y - move_first_by * math.sin(ellipse.angle))
    return " ".join(f"{x:.3f},{y:.3f}" for x, y in ends)


class TestMeasurementCard:
    def test_a_clinician_sees_the_ellipse_the_figures_in_pixels_marked_not_calibrated_and_the_review(
        self,
        client,
        clinician,
        study,
    ):
        image, measurement = measured_image(study)
        client.force_login(clinician)

        card = card_html(study_page(client, study), image)

        assert f'viewBox="-0.5 -0.5 {WIDTH} {HEIGHT}"' in card
        assert card.count('class="current-ellipse"') == 2  # over the thumbnail, and in the editor
        assert "Not calibrated" in card
        assert f'{measurement.hc_px:.1f}</span> <span class="unit">px' in card
        assert " mm</span>" not in card
        assert "Model fetal-head-test-v1" in card
        assert "Suggested" in card
        assert "Accept measurement" in card and "Reject measurement" in card
        assert "not calibrated: the image has no pixel size" in card  # why no gestational age is shown
        assert 'class="handle"' in card  # the editor's four handles
        assert card.count('class="handle"') == 4

    def test_a_skull_cut_by_the_border_is_flagged_in_words(self, client, clinician, study):
        image = brain_image(study)
        measure(image, Ellipse(cx=60.0, cy=120.0, semi_major=90.0, semi_minor=70.0, angle=0.0))
        client.force_login(clinician)

        card = card_html(study_page(client, study), image)

        assert "Needs review" in card
        assert "The skull is cut by the image border" in card

    def test_a_sonographer_sees_the_measurement_without_review_controls(
        self,
        client,
        sonographer,
        study,
    ):
        image, _ = measured_image(study)
        client.force_login(sonographer)

        card = card_html(study_page(client, study), image)

        assert "Head measurement" in card and "Not calibrated" in card
        assert "Accept measurement" not in card and "Reject measurement" not in card
        assert 'class="handle"' not in card
        assert "Calibrate: draw a known distance" in card  # a sonographer may calibrate the image

    def test_while_the_job_is_queued_the_card_says_measuring_and_the_poll_brings_the_measurement(
        self,
        client,
        clinician,
        study,
    ):
        image = brain_image(study)
        client.force_login(clinician)
        card = card_html(study_page(client, study), image)
        assert "Measuring…" in card and 'data-status="QUEUED"' in card
        poll_url = reverse("study-images", args=[study.id])
        before = client.get(poll_url, **PARTIAL)

        measure(image)
        after = client.get(poll_url, {"since": before["X-Poll-State"]}, HTTP_IF_NONE_MATCH=before["ETag"], **PARTIAL)

        assert after.status_code == 200  # not a 304: the card changed
        fresh = card_html(after.content.decode(), image)
        assert "Measuring…" not in fresh and "Accept measurement" in fresh

    def test_the_study_page_costs_the_same_queries_with_more_measured_images(
        self,
        client,
        clinician,
        study,
    ):
        client.force_login(clinician)
        measured_image(study, seed=1)
        study_page(client, study)
        with CaptureQueriesContext(connection) as one:
            study_page(client, study)
        measured_image(study, seed=2)
        measured_image(study, seed=3)
        with CaptureQueriesContext(connection) as three:
            study_page(client, study)
        assert len(three) == len(one)


class TestMeasurementReview:
    def test_a_clinician_accepts_with_a_plain_form_post(self, client, clinician, study):
        image, measurement = measured_image(study)
        client.force_login(clinician)

        response = client.post(reverse("measurement-review", args=[measurement.id]), {"review_action": "accept"})

        assert response.status_code == 302
        assert response["Location"].endswith(f"/studies/{study.id}/#image-{image.id}")
        measurement.refresh_from_db()
        assert measurement.review_state == Measurement.ReviewState.ACCEPTED
        assert measurement.reviewed_by == clinician

    def test_a_sonographer_without_the_review_permission_gets_403_and_nothing_changes(
        self,
        client,
        sonographer,
        study,
    ):
        _, measurement = measured_image(study)
        client.force_login(sonographer)
        url = reverse("measurement-review", args=[measurement.id])

        plain = client.post(url, {"review_action": "accept"})
        adjust = {"review_action": "adjust", "points": ends_value(measurement, move_first_by=5)}
        scripted = client.post(url, adjust, **PARTIAL)

        assert plain.status_code == 403 and scripted.status_code == 403
        measurement.refresh_from_db()
        assert measurement.review_state == Measurement.ReviewState.SUGGESTED
        assert measurement.history.count() == 1

    def test_adjusted_axis_ends_change_the_ellipse_and_the_card_shows_the_new_figures(
        self,
        client,
        clinician,
        study,
    ):
        image, measurement = measured_image(study)
        client.force_login(clinician)
        before_ofd = measurement.ofd_px

        response = client.post(
            reverse("measurement-review", args=[measurement.id]),
            {"review_action": "adjust", "points": ends_value(measurement, move_first_by=10)},
            **PARTIAL,
        )

        assert response.status_code == 200
        measurement.refresh_from_db()
        assert measurement.review_state == Measurement.ReviewState.ADJUSTED
        assert measurement.ofd_px == pytest.approx(before_ofd + 10, abs=0.01)
        assert measurement.model_ellipse["semi_major"] == pytest.approx(SKULL.semi_major, abs=1)  # kept
        card = response.content.decode()
        assert f'id="image-{image.id}"' in card and "Adjusted" in card
        assert f"{measurement.hc_px:.1f}" in card

    def test_three_clicks_redraw_the_ellipse(self, client, clinician, study):
        _, measurement = measured_image(study)
        client.force_login(clinician)
        points = "60,120 260,120 160,50"  # a 200 px axis, and a point 70 px above its middle

        client.post(reverse("measurement-review", args=[measurement.id]), {"review_action": "redraw", "points": points})

        measurement.refresh_from_db()
        assert measurement.review_state == Measurement.ReviewState.ADJUSTED
        assert (measurement.semi_major, measurement.semi_minor) == (pytest.approx(100), pytest.approx(70))
        assert (measurement.center_x, measurement.center_y) == (pytest.approx(160), pytest.approx(120))

    @pytest.mark.parametrize(
        ("points", "message"),
        [
            ("10,10 10,10 50,60 60,50", "describe no ellipse"),  # the long axis's two ends coincide
            ("10,10 20,20 30,30", "Give 4 points"),
            ("10,10 abc 30,30 40,40", "is not a point"),
        ],
    )
    def test_bad_axis_ends_are_refused_with_a_message_and_nothing_changes(
        self,
        client,
        clinician,
        study,
        points,
        message,
    ):
        _, measurement = measured_image(study)
        client.force_login(clinician)
        url = reverse("measurement-review", args=[measurement.id])

        scripted = client.post(url, {"review_action": "adjust", "points": points}, **PARTIAL)
        plain = client.post(url, {"review_action": "adjust", "points": points}, follow=True)

        assert scripted.status_code == 400
        assert message in scripted.content.decode()
        assert message in plain.content.decode()  # the flash message on the study page
        measurement.refresh_from_db()
        assert measurement.review_state == Measurement.ReviewState.SUGGESTED
        assert measurement.semi_major == pytest.approx(SKULL.semi_major, abs=1)
        assert measurement.history.count() == 1

    def test_a_rejection_keeps_its_comment_and_the_history_lists_model_then_review(
        self,
        client,
        clinician,
        study,
    ):
        _, measurement = measured_image(study)
        client.force_login(clinician)
        client.post(
            reverse("measurement-review", args=[measurement.id]),
            {"review_action": "reject", "comment": "Not the skull"},
            **PARTIAL,
        )

        history = client.get(reverse("measurement-history", args=[measurement.id]), {"fragment": 1})

        text = re.sub(r"\s+", " ", history.content.decode())
        assert text.index("Measured by the model") < text.index("Rejected")
        assert clinician.username in text and "“Not the skull”" in text

    def test_another_clinics_measurement_is_404(self, client, south_sonographer, clinician, study):
        _, measurement = measured_image(study)
        client.force_login(south_sonographer)
        review = client.post(reverse("measurement-review", args=[measurement.id]), {"review_action": "accept"})
        assert review.status_code == 404
        assert client.get(reverse("measurement-history", args=[measurement.id])).status_code == 404


class TestCalibrationByDrawing:
    def test_a_drawn_line_gives_the_image_a_pixel_size_and_the_measurement_millimetres(
        self,
        client,
        sonographer,
        study,
    ):
        image, measurement = measured_image(study)
        client.force_login(sonographer)

        response = client.post(
            reverse("image-calibrate", args=[image.id]),
            {"start_x": 10, "start_y": 20, "end_x": 210, "end_y": 20, "distance_mm": 30},
            **PARTIAL,
        )

        assert response.status_code == 200, response.content
        image.refresh_from_db()
        measurement.refresh_from_db()
        assert (image.pixel_size_mm, image.pixel_size_source) == (pytest.approx(0.15), "drawn")
        assert measurement.hc_mm == pytest.approx(measurement.hc_px * 0.15)
        card = response.content.decode()
        assert f'{measurement.hc_mm:.1f}</span> <span class="unit">mm' in card
        assert "Not calibrated" not in card
        assert "0.1500 mm</span>, drawn on the image" in card

    def test_a_zero_length_line_is_refused_and_nothing_changes(self, client, sonographer, study):
        image, _ = measured_image(study)
        client.force_login(sonographer)

        response = client.post(
            reverse("image-calibrate", args=[image.id]),
            {"start_x": 10, "start_y": 20, "end_x": 10, "end_y": 20, "distance_mm": 30},
            **PARTIAL,
        )

        assert response.status_code == 400
        image.refresh_from_db()
        assert image.pixel_size_mm is None


def test_shapes_in_the_card_follow_the_stored_ellipse():
    """The handles sit on the axis ends of the stored ellipse (degrees in the model, radians in the core)."""
    from patients.measurement_cards import _shape

    shape = _shape((100.0, 50.0, 40.0, 20.0, 90.0))
    assert np.allclose(shape.ends, [(100, 10), (100, 90), (120, 50), (80, 50)], atol=0.01)


def test_a_calibrated_accepted_hc_shows_its_gestational_age_and_centile(client, clinician, study):
    image, measurement = measured_image(study)
    client.force_login(clinician)
    line = {"start_x": 10, "start_y": 20, "end_x": 210, "end_y": 20}
    client.post(reverse("image-calibrate", args=[image.id]), {**line, "distance_mm": 70}, **PARTIAL)  # 0.35 mm/px
    card = client.post(reverse("measurement-review", args=[measurement.id]), {"review_action": "accept"}, **PARTIAL)

    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", card.content.decode()))
    measurement.refresh_from_db()
    assert measurement.hc_mm == pytest.approx(176.6, abs=0.1)  # a head of about 20 weeks
    assert f"HC {measurement.hc_mm:.1f} mm" in text
    assert re.search(r"GA from HC 2[01]\+\d weeks", text), text
    assert re.search(r"HC centile \d+\.\d, z -?\d\.\d\d", text), text
