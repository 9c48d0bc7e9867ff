"""Sign-off and reopening through the API: clinicians only, 409 study_has_open_items listing what is open, the
study's signed_by/signed_at, and 409 study_signed_off for every write to a signed-off study. Predictions come
from the tiny model's real job."""

from __future__ import annotations

import pytest

from classifier.labels import PLANE_LABELS
from classifier.services import classification_job_run
from patients.models import Study
from patients.services import image_upload
from tests.conftest import _token_client
from tests.factories import UserFactory
from tests.images import png_bytes


@pytest.fixture
def unreviewed(study, sonographer, active_model):
    image = image_upload(study=study, data=png_bytes(seed=4), filename="a.png", uploaded_by=sonographer).image
    classification_job_run(job_id=image.jobs.get().id)
    return image


class TestStudySignOffApi:
    def test_open_items_are_a_409_listing_them(self, clinician_client, study, unreviewed):
        response = clinician_client.post(f"/api/v1/studies/{study.id}/sign-off/", {}, format="json")

        assert response.status_code == 409
        body = response.json()
        assert body["code"] == "study_has_open_items"
        # An error's extra is answered beside its detail and code.
        assert (body["unreviewed"], body["pending"], body["missing"]) == ([unreviewed.id], [], PLANE_LABELS)
        assert Study.objects.get(id=study.id).status == "OPEN"

    def test_acknowledged_signs_and_the_study_says_who_and_when(self, clinician_client, api_client, study, unreviewed):
        response = clinician_client.post(f"/api/v1/studies/{study.id}/sign-off/", {"acknowledged": True}, format="json")

        assert response.status_code == 200
        assert (response.json()["status"], response.json()["signed_by"]) == ("COMPLETED", "clin_north")
        read = api_client.get(f"/api/v1/studies/{study.id}/").json()
        assert read["signed_at"] == response.json()["signed_at"] is not None

    @pytest.mark.parametrize("client_name", ["api_client", "sonographer_client"])
    def test_only_clinicians_sign_off(self, request, client_name, study, unreviewed):
        client = request.getfixturevalue(client_name)

        response = client.post(f"/api/v1/studies/{study.id}/sign-off/", {"acknowledged": True}, format="json")

        assert response.status_code == 403
        assert Study.objects.get(id=study.id).status == "OPEN"

    def test_another_clinics_clinician_gets_a_404(self, south, study):
        client = _token_client(UserFactory(clinic=south, role="clinician"))

        for route, body in (("sign-off", {"acknowledged": True}), ("reopen", {"reason": "x"})):
            response = client.post(f"/api/v1/studies/{study.id}/{route}/", body, format="json")
            assert response.status_code == 404


class TestSignedStudyApi:
    @pytest.fixture
    def signed(self, clinician_client, study, unreviewed):
        clinician_client.post(f"/api/v1/studies/{study.id}/sign-off/", {"acknowledged": True}, format="json")
        return study

    def test_every_write_is_a_409_study_signed_off(self, clinician_client, api_client, signed, unreviewed):
        writes = [
            (api_client, "patch", f"/api/v1/studies/{signed.id}/", {"notes": "late"}),
            (clinician_client, "post", f"/api/v1/images/{unreviewed.id}/review/", {"label": PLANE_LABELS[0]}),
            (clinician_client, "post", f"/api/v1/images/{unreviewed.id}/exclude/", {"reason": "test_image"}),
            (clinician_client, "post", f"/api/v1/images/{unreviewed.id}/include/", None),
        ]
        for client, method, url, body in writes:
            response = getattr(client, method)(url, body, format="json")
            assert (response.status_code, response.json()["code"]) == (409, "study_signed_off"), url

    def test_reopen_needs_a_reason_and_keeps_it(self, clinician_client, signed):
        blank = clinician_client.post(f"/api/v1/studies/{signed.id}/reopen/", {"reason": ""}, format="json")
        response = clinician_client.post(
            f"/api/v1/studies/{signed.id}/reopen/", {"reason": "Femur to repeat"}, format="json"
        )
        again = clinician_client.post(f"/api/v1/studies/{signed.id}/reopen/", {"reason": "Again"}, format="json")

        assert blank.status_code == 400 and "reason" in blank.json()["fields"]
        assert response.status_code == 200
        assert (response.json()["status"], response.json()["signed_by"], response.json()["signed_at"]) == (
            "OPEN",
            None,
            None,
        )
        assert signed.history.latest("history_id").history_change_reason == "Femur to repeat"
        assert (again.status_code, again.json()["code"]) == (409, "study_not_signed")


class TestGestationalAgeApi:
    @pytest.mark.parametrize(
        "body", [{"gestational_age_weeks": 0, "gestational_age_days": 0}, {"gestational_age_weeks": None}]
    )
    def test_an_implausible_age_is_a_400(self, api_client, study, body):
        assert study.gestational_age_days is not None  # so clearing the weeks alone leaves days without weeks
        response = api_client.patch(f"/api/v1/studies/{study.id}/", body, format="json")

        assert response.status_code == 400

    def test_whole_weeks_come_back_with_0_days(self, api_client, study):
        response = api_client.patch(
            f"/api/v1/studies/{study.id}/", {"gestational_age_weeks": 30, "gestational_age_days": None}, format="json"
        )

        assert (response.json()["gestational_age_weeks"], response.json()["gestational_age_days"]) == (30, 0)
