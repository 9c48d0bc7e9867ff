"""Patients and studies through the API: list, filter, order, create, update, complete."""

from __future__ import annotations

import datetime

import pytest

from tests.factories import PatientFactory, StudyFactory


@pytest.fixture
def north_patients(north):
    return [
        PatientFactory(clinic=north, mrn="N-1", family_name="Adams", given_name="Ann"),
        PatientFactory(clinic=north, mrn="N-2", family_name="Brown", given_name="Bea"),
        PatientFactory(clinic=north, mrn="N-3", family_name="Clark", given_name="Cat"),
    ]


class TestPatientListApi:
    def test_pages_with_limit_and_offset(self, api_client, north_patients, django_assert_max_num_queries):
        with django_assert_max_num_queries(25):  # the access log (fetalsite.audit) writes its own rows
            response = api_client.get("/api/v1/patients/?limit=2&offset=1")

        assert response.status_code == 200
        body = response.json()
        assert body["count"] == 3
        assert [p["mrn"] for p in body["results"]] == ["N-2", "N-3"]
        assert body["previous"] is not None

    def test_searches_and_orders(self, api_client, north_patients):
        response = api_client.get("/api/v1/patients/?ordering=-mrn")
        searched = api_client.get("/api/v1/patients/?search=brow")

        assert [p["mrn"] for p in response.json()["results"]] == ["N-3", "N-2", "N-1"]
        assert [p["mrn"] for p in searched.json()["results"]] == ["N-2"]
        assert api_client.get("/api/v1/patients/?ordering=,,").status_code == 400  # empty parts are not ignored

    def test_rejects_unknown_ordering_with_the_error_shape(self, api_client, north_patients):
        response = api_client.get("/api/v1/patients/?ordering=clinic")

        assert response.status_code == 400
        assert set(response.json()) == {"detail", "code", "fields"}
        assert "ordering" in response.json()["fields"]


class TestPatientCreateAndUpdateApi:
    def test_creates_then_corrects_a_patient(self, api_client):
        created = api_client.post(
            "/api/v1/patients/", {"mrn": "N-9", "given_name": "Eve", "family_name": "Stone"}, format="json"
        )
        patient_id = created.json()["id"]
        updated = api_client.patch(f"/api/v1/patients/{patient_id}/", {"family_name": "Stone-Hill"}, format="json")

        assert created.status_code == 201
        assert updated.status_code == 200
        assert updated.json()["family_name"] == "Stone-Hill"
        assert updated.json()["mrn"] == "N-9"

    def test_duplicate_mrn_is_a_409_naming_the_field_and_the_existing_patient(self, api_client, north_patients):
        response = api_client.post(
            "/api/v1/patients/", {"mrn": " N-1 ", "given_name": "X", "family_name": "Y"}, format="json"
        )

        assert response.status_code == 409
        assert response.json() == {
            "detail": "A patient with this MRN is already registered in your clinic.",
            "code": "mrn_exists",
            "fields": {"mrn": ["A patient with this MRN is already registered in your clinic."]},
            "existing_id": north_patients[0].id,
        }

    def test_the_same_mrn_in_another_clinic_is_no_conflict(self, api_client, south):
        PatientFactory(clinic=south, mrn="N-1")

        response = api_client.post(
            "/api/v1/patients/", {"mrn": "N-1", "given_name": "X", "family_name": "Y"}, format="json"
        )

        assert response.status_code == 201

    def test_changing_the_mrn_to_a_taken_one_is_a_409_and_changes_nothing(self, api_client, north_patients):
        first, second = north_patients[:2]

        response = api_client.patch(
            f"/api/v1/patients/{second.id}/", {"mrn": "N-1", "family_name": "Changed"}, format="json"
        )

        assert response.status_code == 409
        assert (response.json()["code"], response.json()["existing_id"]) == ("mrn_exists", first.id)
        second.refresh_from_db()
        assert (second.mrn, second.family_name) == ("N-2", "Brown")

    def test_has_no_delete(self, api_client, north_patients):
        response = api_client.delete(f"/api/v1/patients/{north_patients[0].id}/")

        assert response.status_code == 405
        assert response.json()["code"] == "method_not_allowed"


class TestStudyApi:
    def test_filters_by_patient_status_and_exam_dates(self, api_client, north):
        patient = PatientFactory(clinic=north)
        early = StudyFactory(patient=patient, exam_date=datetime.date(2026, 1, 10))
        late = StudyFactory(patient=patient, exam_date=datetime.date(2026, 3, 10))
        StudyFactory(patient__clinic=north, exam_date=datetime.date(2026, 3, 11))

        by_patient = api_client.get(f"/api/v1/studies/?patient={patient.id}")
        by_range = api_client.get(
            f"/api/v1/studies/?patient={patient.id}&exam_date_after=2026-02-01&exam_date_before=2026-12-31"
        )
        by_status = api_client.get("/api/v1/studies/?status=COMPLETED")

        assert [s["id"] for s in by_patient.json()["results"]] == [late.id, early.id]
        assert [s["id"] for s in by_range.json()["results"]] == [late.id]
        assert by_status.json()["count"] == 0

    def test_bad_filter_values_are_400s(self, api_client, study):
        assert api_client.get("/api/v1/studies/?status=CLOSED").status_code == 400
        assert api_client.get("/api/v1/studies/?exam_date_after=yesterday").status_code == 400
        assert api_client.get("/api/v1/studies/?patient=abc").status_code == 400

    def test_updates_a_study(self, api_client, study):
        updated = api_client.patch(f"/api/v1/studies/{study.id}/", {"notes": "Placenta anterior."}, format="json")

        assert updated.json()["notes"] == "Placenta anterior."
        assert (updated.json()["signed_by"], updated.json()["signed_at"]) == (None, None)

    def test_complete_is_the_sign_off_for_clinicians_only(self, api_client, clinician_client, study):
        refused = api_client.post(f"/api/v1/studies/{study.id}/complete/")
        open_items = clinician_client.post(f"/api/v1/studies/{study.id}/complete/")
        completed = clinician_client.post(
            f"/api/v1/studies/{study.id}/complete/", {"acknowledged": True}, format="json"
        )

        assert refused.status_code == 403
        assert (open_items.status_code, open_items.json()["code"]) == (409, "study_has_open_items")
        assert completed.status_code == 200
        assert (completed.json()["status"], completed.json()["signed_by"]) == ("COMPLETED", "clin_north")

    def test_uploading_to_a_signed_off_study_is_a_409(self, api_client, clinician_client, study):
        from tests.images import png_bytes

        clinician_client.post(f"/api/v1/studies/{study.id}/sign-off/", {"acknowledged": True}, format="json")
        response = api_client.post(
            f"/api/v1/studies/{study.id}/images/", {"file": _named(png_bytes(), "a.png")}, format="multipart"
        )

        assert response.status_code == 409
        assert response.json()["code"] == "study_signed_off"

    def test_rejects_future_exam_date(self, api_client, study):
        response = api_client.patch(f"/api/v1/studies/{study.id}/", {"exam_date": "2999-01-01"}, format="json")

        assert response.status_code == 400
        assert "exam_date" in response.json()["fields"]


def _named(data: bytes, name: str):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data)
