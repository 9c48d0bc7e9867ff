"""The measurement API and the image API's ``measurements``: shapes, review, refusals (400 changes nothing, 403,
404 for another clinic's), millimetres only when calibrated."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from biometry.models import Measurement
from tests.biometry.conftest import brain_image, empty_head, measured
from tests.conftest import _token_client

pytestmark = pytest.mark.usefixtures("measuring", "model_version")

MEASUREMENT_KEYS = {
    "id", "image", "job", "model_version", "review_state", "ellipse", "model_ellipse", "hc_px", "bpd_px", "ofd_px",
    "hc_mm", "bpd_mm", "ofd_mm", "calibrated", "pixel_size_mm", "calibration_source", "flags", "needs_review",
    "fit_iou", "inference_ms", "total_ms", "runtime", "created_at", "reviewed_by", "reviewed_at", "review_comment",
    "growth",
}  # fmt: skip
AXIS_ENDS = [[10, 24], [54, 24], [32, 10], [32, 38]]


@pytest.fixture
def clinician_client(clinician):
    return _token_client(clinician)


@pytest.fixture
def measurement(study):
    return measured(brain_image(study, pixel_size_mm=0.5))


class TestImageDetail:
    def test_the_image_carries_its_measurements(self, api_client, measurement):
        body = api_client.get(f"/api/v1/images/{measurement.image_id}/").json()

        (shown,) = body["measurements"]
        assert set(shown) == MEASUREMENT_KEYS
        assert (shown["id"], shown["model_version"], shown["review_state"]) == (
            measurement.id,
            "fetal-head-test-v1",
            "suggested",
        )
        assert shown["ellipse"] == shown["model_ellipse"] and set(shown["ellipse"]) == {
            "cx", "cy", "semi_major", "semi_minor", "angle_deg"
        }  # fmt: skip
        assert shown["calibrated"] is True and shown["hc_mm"] == pytest.approx(shown["hc_px"] * 0.5)
        assert shown["growth"]["centile"] is None and "not reviewed" in shown["growth"]["centile_reason"]

    def test_an_uncalibrated_image_is_measured_in_pixels_only(self, api_client, study):
        image = brain_image(study, seed=4)
        measured(image)
        (shown,) = api_client.get(f"/api/v1/images/{image.id}/").json()["measurements"]
        assert shown["calibrated"] is False and shown["pixel_size_mm"] is None
        assert (shown["hc_mm"], shown["bpd_mm"], shown["ofd_mm"]) == (None, None, None) and shown["hc_px"] > 0
        assert shown["growth"]["ga_reason"].startswith("not calibrated")

    def test_an_image_not_measured_has_none(self, api_client, study):
        image = brain_image(study, seed=6)
        assert api_client.get(f"/api/v1/images/{image.id}/").json()["measurements"] == []

    def test_the_image_list_reads_measurements_in_a_fixed_number_of_queries(self, api_client, study):
        def queries() -> tuple[int, list]:
            with CaptureQueriesContext(connection) as captured:
                body = api_client.get(f"/api/v1/images/?study={study.id}").json()
            return len(captured), [len(image["measurements"]) for image in body["results"]]

        measured(brain_image(study, seed=10, pixel_size_mm=0.5))
        one, counts = queries()
        for seed in (11, 12):
            measured(brain_image(study, seed=seed, pixel_size_mm=0.5))
        three, more_counts = queries()

        assert (counts, more_counts) == ([1], [1, 1, 1])
        assert three == one


class TestMeasurementDetail:
    def test_reads_one_measurement(self, api_client, measurement):
        response = api_client.get(f"/api/v1/measurements/{measurement.id}/")
        assert response.status_code == 200 and set(response.json()) == MEASUREMENT_KEYS

    def test_another_clinics_measurement_is_not_found(self, south_api_client, measurement):
        assert south_api_client.get(f"/api/v1/measurements/{measurement.id}/").status_code == 404
        assert south_api_client.get("/api/v1/measurements/999999/").status_code == 404


class TestMeasurementReview:
    def test_a_clinician_adjusts_the_ellipse(self, clinician_client, measurement):
        response = clinician_client.post(
            f"/api/v1/measurements/{measurement.id}/review/",
            {"action": "adjust", "axis_ends": AXIS_ENDS, "comment": "Outer edge."},
        )

        assert response.status_code == 200, response.content
        body = response.json()
        assert (body["review_state"], body["reviewed_by"], body["review_comment"]) == (
            "adjusted",
            "clin_north",
            "Outer edge.",
        )
        assert (body["ofd_px"], body["bpd_px"], body["ofd_mm"]) == pytest.approx((44, 28, 22))
        assert body["model_ellipse"] != body["ellipse"]
        assert body["growth"]["hc_mm"] == pytest.approx(body["hc_mm"])

    def test_a_clinician_accepts_and_the_growth_summary_follows(self, clinician_client, measurement):
        body = clinician_client.post(f"/api/v1/measurements/{measurement.id}/review/", {"action": "accept"}).json()
        assert body["review_state"] == "accepted" and body["ellipse"] == body["model_ellipse"]
        # ~ 88 mm of HC: under the HC-dating window (from 14+0 weeks), so the reason says why there is no GA.
        assert body["growth"]["ga_from_hc_days"] is None and "outside" in body["growth"]["ga_reason"]

    @pytest.mark.parametrize(
        "payload",
        [
            {},
            {"action": "stretch"},
            {"action": "adjust"},
            {"action": "adjust", "axis_ends": [[1, 2], [3, 4]]},
            {"action": "adjust", "axis_ends": [[5, 5], [5, 5], [1, 1], [2, 2]]},
            {"action": "redraw", "points": [[1, 2, 3], [4, 5], [6, 7]]},
            {"action": "redraw", "points": [[10, 24], [50, 24], [60, 24]]},
            {"action": "accept", "axis_ends": AXIS_ENDS},
            {"action": "accept", "label": "fetal_brain"},
            {"action": "reject", "comment": "x" * 2001},
            {"action": "adjust", "axis_ends": None},
            {"action": "adjust", "axis_ends": [[1e308, 24], [-1e308, 24], [32, 10], [32, 38]]},
            {"action": "redraw", "points": [[1e308, 1e308], [-1e308, -1e308], [0, 1]]},
            {"action": "redraw", "points": [["a", 1], [2, 2], [3, 3]]},
            {"action": None},
        ],
    )
    def test_bad_input_is_400_with_a_message_and_changes_nothing(self, clinician_client, measurement, payload):
        response = clinician_client.post(f"/api/v1/measurements/{measurement.id}/review/", payload)

        assert response.status_code == 400, response.content
        assert response.json()["code"] == "invalid" and response.json()["fields"]
        assert Measurement.objects.get().review_state == "suggested" and measurement.history.count() == 1

    def test_a_sonographer_is_refused(self, measurement, sonographer):
        response = _token_client(sonographer).post(
            f"/api/v1/measurements/{measurement.id}/review/", {"action": "accept"}
        )
        assert response.status_code == 403 and Measurement.objects.get().review_state == "suggested"

    def test_another_clinics_measurement_is_not_found_before_any_403(self, south_api_client, measurement):
        response = south_api_client.post(f"/api/v1/measurements/{measurement.id}/review/", {"action": "accept"})
        assert response.status_code == 404

    def test_an_empty_measurement_cannot_be_accepted(self, clinician_client, study):
        measurement = measured(brain_image(study, seed=8), empty_head())
        response = clinician_client.post(f"/api/v1/measurements/{measurement.id}/review/", {"action": "accept"})
        assert response.status_code == 400 and "redraw" in str(response.json()["fields"])

    def test_a_rejected_measurement_says_why_it_has_no_growth_figures(self, clinician_client, measurement):
        body = clinician_client.post(f"/api/v1/measurements/{measurement.id}/review/", {"action": "reject"}).json()
        assert body["review_state"] == "rejected" and body["growth"]["ga_reason"].startswith("a clinician rejected")
