"""Security events: refused attempts (DENIED) and replayed answers (REPLAY) leave entries."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from fetalsite.accounts.roles import Role
from fetalsite.audit.models import AccessLogEntry
from fetalsite.audit.selectors import access_log_verify
from fetalsite.audit.services import access_log_record
from tests.factories import PatientFactory, UserFactory
from tests.images import png_bytes

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/audit/accesslogentry/"
PATIENT = {"mrn": "N-77", "given_name": "Maria", "family_name": "Rossi"}


def _entries(action: str) -> list[AccessLogEntry]:
    return list(AccessLogEntry.objects.filter(action=action).order_by("id"))


def _clinic_admin(clinic, username: str):
    user = UserFactory(username=username, clinic=clinic, is_staff=True, role=None)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_accesslogentry", "view_patient"]))
    return user


class TestRefusedCrossClinicAttempts:
    def test_api_404_for_another_clinics_image_is_a_denied_entry_of_the_users_clinic(
        self, south_api_client, south_sonographer, north_records
    ):
        response = south_api_client.get(f"/api/v1/images/{north_records['image_id']}/file/", REMOTE_ADDR="10.9.9.9")

        assert response.status_code == 404
        [entry] = _entries("DENIED")
        assert (entry.user, entry.clinic_id, entry.method, entry.status_code, entry.ip) == (
            south_sonographer,
            south_sonographer.clinic_id,
            "GET",
            404,
            "10.9.9.9",
        )
        assert (entry.object_type, entry.object_id) == ("image_file", north_records["image_id"])
        assert entry.patient_id is None and entry.patient_ids is None  # never the other clinic's patient
        assert not _entries("DOWNLOAD") and access_log_verify().ok

    def test_a_refused_write_below_another_clinics_record_names_that_record(self, south_api_client, study):
        response = south_api_client.patch(f"/api/v1/studies/{study.id}/", {"notes": "x"}, format="json")

        assert response.status_code == 404
        [entry] = _entries("DENIED")
        assert (entry.method, entry.object_type, entry.object_id) == ("PATCH", "study", study.id)

    def test_a_refused_upload_to_another_clinics_study_names_the_study(self, south_api_client, study):
        response = south_api_client.post(f"/api/v1/studies/{study.id}/images/", {})

        assert response.status_code == 404
        [entry] = _entries("DENIED")
        assert (entry.object_type, entry.object_id, entry.patient_id) == ("study", study.id, None)

    def test_a_missing_id_answers_the_same_and_is_not_logged(self, south_api_client, study):
        foreign = south_api_client.get(f"/api/v1/studies/{study.id}/")
        missing = south_api_client.get(f"/api/v1/studies/{study.id + 1000}/")

        assert foreign.status_code == missing.status_code == 404
        assert foreign.json() == missing.json()
        assert [entry.object_id for entry in AccessLogEntry.objects.all()] == [study.id]

    def test_an_own_clinic_404_is_not_a_refusal(self, client, sonographer, study):
        client.force_login(sonographer)

        response = client.post(f"/images/{study.id + 1000}/retry/")

        assert response.status_code == 404
        assert not AccessLogEntry.objects.exists()

    def test_the_admin_redirect_for_another_clinics_patient_is_a_denied_entry(self, client, south, study):
        south_admin = _clinic_admin(south, "admin_south")
        client.force_login(south_admin)

        response = client.get(f"/admin/patients/patient/{study.patient_id}/change/")

        assert response.status_code == 302
        [entry] = _entries("DENIED")
        assert (entry.user, entry.clinic_id, entry.object_type, entry.object_id, entry.patient_id) == (
            south_admin,
            south.id,
            "patient",
            study.patient_id,
            None,
        )


class TestPermissionDenied:
    def test_a_403_on_a_patient_page_is_a_denied_entry_with_the_own_clinics_patient(
        self, client, sonographer, north_records
    ):
        client.force_login(sonographer)  # sonographers may not review

        response = client.post(f"/images/{north_records['image_id']}/review/", {"label": "fetal_brain"})

        assert response.status_code == 403
        [entry] = _entries("DENIED")
        assert (entry.user, entry.method, entry.status_code, entry.object_type, entry.object_id) == (
            sonographer,
            "POST",
            403,
            "image",
            north_records["image_id"],
        )
        assert (entry.patient_id, entry.clinic_id) == (north_records["patient_id"], sonographer.clinic_id)

    def test_a_403_on_another_clinics_record_never_names_its_patient(self, client, south, study):
        integrator = UserFactory(username="int_south", clinic=south, role=Role.INTEGRATOR)
        client.force_login(integrator)  # integrators are refused every page, before any lookup

        response = client.get(f"/patients/{study.patient_id}/")

        assert response.status_code == 403
        [entry] = _entries("DENIED")
        assert (entry.object_type, entry.object_id, entry.patient_id, entry.clinic_id) == (
            "patient",
            study.patient_id,
            None,
            south.id,
        )

    def test_a_403_in_the_admin_is_a_denied_entry(self, client, north):
        staff = UserFactory(username="staff_north", clinic=north, is_staff=True, role=None)
        client.force_login(staff)

        assert client.get(CHANGELIST).status_code == 403
        [entry] = _entries("DENIED")
        assert (entry.user, entry.object_type, entry.path, entry.status_code) == (
            staff,
            "audit_accesslogentry",
            CHANGELIST,
            403,
        )

    def test_unauthenticated_and_non_patient_refusals_are_not_logged(self, client, api_client, study):
        with CaptureQueriesContext(connection) as captured:
            not_patient_data = api_client.get("/api/v1/model-versions/nope/")
        unauthenticated = client.get(f"/api/v1/studies/{study.id}/")

        assert (not_patient_data.status_code, unauthenticated.status_code) == (404, 401)
        assert not AccessLogEntry.objects.exists()
        assert not [q for q in captured if "audit_" in q["sql"]]


class TestClinicAdminReview:
    def test_the_users_clinic_admin_sees_the_attempt_but_not_the_other_clinics_patient(
        self, client, south_api_client, north, south, study
    ):
        south_api_client.get(f"/api/v1/studies/{study.id}/")
        south_admin = _clinic_admin(south, "admin_south")
        client.force_login(south_admin)

        listing = client.get(CHANGELIST, {"action__exact": "DENIED"})
        [entry] = listing.context["cl"].result_list
        detail = client.get(f"{CHANGELIST}{entry.id}/change/").content.decode()

        assert (entry.action, entry.object_id, entry.patient_id) == ("DENIED", study.id, None)
        assert study.patient.mrn not in detail and study.patient.family_name not in detail

    def test_the_other_clinics_admin_does_not_see_the_attempt(self, client, south_api_client, north, study):
        south_api_client.get(f"/api/v1/studies/{study.id}/")
        client.force_login(_clinic_admin(north, "admin_north"))

        listing = client.get(CHANGELIST, {"action__exact": "DENIED"})

        assert list(listing.context["cl"].result_list) == []


class TestReplays:
    def test_a_replayed_creation_is_logged_with_the_created_patient(self, api_client, integrator):
        def post():
            body = json.dumps(PATIENT)
            return api_client.post("/api/v1/patients/", body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k")

        first = post()
        assert not AccessLogEntry.objects.exists()  # a first write is in the model history, not here
        replayed = post()

        assert replayed["Idempotent-Replayed"] == "true"
        [entry] = _entries("REPLAY")
        patient_id = first.json()["id"]
        assert (entry.user, entry.method, entry.path, entry.status_code) == (
            integrator,
            "POST",
            "/api/v1/patients/",
            201,
        )
        assert (entry.object_type, entry.object_id, entry.patient_id, entry.clinic_id) == (
            "patient",
            patient_id,
            patient_id,
            integrator.clinic_id,
        )
        assert entry.request_id == replayed["X-Request-ID"] and access_log_verify().ok

    def test_a_replayed_upload_names_the_image_and_its_patient(self, api_client, north_records):
        url = f"/api/v1/studies/{north_records['study_id']}/images/"

        def upload():
            scan = SimpleUploadedFile("scan.png", png_bytes(seed=5), content_type="image/png")
            return api_client.post(url, {"file": [scan]}, format="multipart", HTTP_IDEMPOTENCY_KEY="up-1")

        first = upload()
        replayed = upload()

        assert replayed["Idempotent-Replayed"] == "true"
        [entry] = _entries("REPLAY")
        assert (entry.object_type, entry.object_id, entry.patient_id, entry.status_code) == (
            "image",
            first.json()["id"],
            north_records["patient_id"],
            first.status_code,
        )


def test_patient_filter_in_the_admin_finds_lists_that_showed_the_patient(client, api_client, integrator):
    patients = {PatientFactory(clinic=integrator.clinic).id, PatientFactory(clinic=integrator.clinic).id}
    [listed] = api_client.get("/api/v1/patients/", {"limit": 1}).json()["results"]
    shown, not_shown = listed["id"], (patients - {listed["id"]}).pop()
    client.force_login(_clinic_admin(integrator.clinic, "admin_north"))

    found = client.get(CHANGELIST, {"patient_id": shown}).context["cl"].result_list
    missed = client.get(CHANGELIST, {"patient_id": not_shown}).context["cl"].result_list

    assert [entry.action for entry in found] == ["LIST"] and list(missed) == []


@pytest.mark.parametrize("value", ["²", "99999999999999999999999", "12a"])
def test_a_patient_filter_value_that_is_no_id_shows_nothing(client, sonographer, value):
    access_log_record(user=sonographer, action="VIEW", object_type="patient", patient_id=1, path="/", method="GET")
    superuser = UserFactory(username="root", clinic=None, is_staff=True, is_superuser=True, role=None)
    client.force_login(superuser)

    response = client.get(CHANGELIST, {"patient_id": value})

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == []
