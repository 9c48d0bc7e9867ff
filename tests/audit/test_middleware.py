"""Reads of patient data through pages and the API leave one access log entry each."""

from __future__ import annotations

import logging
import uuid

import pytest

from fetalsite.audit.models import AccessLogEntry

pytestmark = pytest.mark.django_db


class TestPageReads:
    def test_study_page_is_logged_with_user_clinic_object_patient_ip_and_request_id(self, client, sonographer, study):
        client.force_login(sonographer)

        response = client.get(f"/studies/{study.id}/", HTTP_X_REQUEST_ID="req-42.a", REMOTE_ADDR="10.1.2.3")

        assert response.status_code == 200
        assert response["X-Request-ID"] == "req-42.a"
        entry = AccessLogEntry.objects.get()
        assert (entry.user, entry.username, entry.clinic) == (sonographer, "sono_north", sonographer.clinic)
        assert (entry.action, entry.object_type, entry.object_id) == ("VIEW", "study", study.id)
        assert entry.patient_id == study.patient_id
        assert (entry.method, entry.path, entry.status_code) == ("GET", f"/studies/{study.id}/", 200)
        assert (entry.ip, entry.request_id) == ("10.1.2.3", "req-42.a")
        assert entry.created_at.utcoffset().total_seconds() == 0

    def test_image_file_download_is_logged_as_download(self, client, sonographer, north_records):
        client.force_login(sonographer)

        response = client.get(f"/images/{north_records['image_id']}/file/")

        assert response.status_code == 200
        entry = AccessLogEntry.objects.get()
        assert (entry.action, entry.object_type, entry.object_id) == (
            "DOWNLOAD",
            "image_file",
            north_records["image_id"],
        )
        assert entry.patient_id == north_records["patient_id"]

    def test_head_request_counts_as_a_read(self, client, sonographer, study):
        client.force_login(sonographer)

        client.head(f"/patients/{study.patient_id}/")

        entry = AccessLogEntry.objects.get()
        assert (entry.method, entry.object_type, entry.patient_id) == ("HEAD", "patient", study.patient_id)

    def test_another_clinics_study_answers_404_and_is_logged_only_as_denied(self, client, south_sonographer, study):
        client.force_login(south_sonographer)

        response = client.get(f"/studies/{study.id}/")

        assert response.status_code == 404
        assert "X-Request-ID" in response
        entry = AccessLogEntry.objects.get()  # no read: only the refused attempt
        assert (entry.action, entry.object_type, entry.object_id, entry.patient_id) == (
            "DENIED",
            "study",
            study.id,
            None,
        )
        assert entry.clinic_id == south_sonographer.clinic_id

    def test_anonymous_request_is_redirected_and_not_logged(self, client, study):
        response = client.get(f"/studies/{study.id}/")

        assert response.status_code == 302
        assert not AccessLogEntry.objects.exists()

    @pytest.mark.urls("tests.audit.urls_open")
    def test_an_anonymous_read_that_succeeds_is_logged_without_user(self, client, study):
        response = client.get(f"/studies/{study.id}/")

        assert response.status_code == 200
        entry = AccessLogEntry.objects.get()
        assert (entry.user, entry.username, entry.object_type, entry.patient_id) == (
            None,
            "",
            "study",
            study.patient_id,
        )


class TestApiReads:
    def test_api_detail_is_logged_for_the_token_user(self, api_client, integrator, study):
        response = api_client.get(f"/api/v1/studies/{study.id}/", REMOTE_ADDR="192.0.2.7")

        assert response.status_code == 200
        entry = AccessLogEntry.objects.get()
        assert (entry.user, entry.clinic_id) == (integrator, integrator.clinic_id)
        assert (entry.action, entry.object_type, entry.object_id, entry.patient_id) == (
            "VIEW",
            "study",
            study.id,
            study.patient_id,
        )
        assert entry.ip == "192.0.2.7"
        assert entry.request_id == response["X-Request-ID"]

    def test_api_list_is_logged_as_list_without_object(self, api_client, integrator, study):
        response = api_client.get("/api/v1/patients/")

        assert response.status_code == 200
        entry = AccessLogEntry.objects.get()
        assert (entry.action, entry.object_type, entry.object_id, entry.patient_id) == ("LIST", "patient", None, None)
        assert (entry.user, entry.clinic_id) == (integrator, integrator.clinic_id)

    def test_generated_request_id_is_a_uuid_echoed_in_the_response(self, api_client, study):
        response = api_client.get("/api/v1/studies/")

        assert uuid.UUID(response["X-Request-ID"]).version == 4
        assert AccessLogEntry.objects.get().request_id == response["X-Request-ID"]

    def test_unsafe_request_id_is_replaced(self, api_client, study):
        response = api_client.get("/api/v1/studies/", HTTP_X_REQUEST_ID="bad id\r\nSet-Cookie: x" + "a" * 80)

        assert uuid.UUID(response["X-Request-ID"]).version == 4

    def test_another_clinics_record_answers_404_and_is_logged_only_as_denied(self, south_api_client, study):
        response = south_api_client.get(f"/api/v1/studies/{study.id}/")

        assert response.status_code == 404
        assert list(AccessLogEntry.objects.values_list("action", "object_id", "patient_id")) == [
            ("DENIED", study.id, None)
        ]

    def test_unauthenticated_request_is_not_logged(self, client, study):
        response = client.get(f"/api/v1/studies/{study.id}/")

        assert response.status_code == 401
        assert not AccessLogEntry.objects.exists()

    def test_writes_are_not_logged_as_reads(self, api_client, study):
        response = api_client.post(
            "/api/v1/patients/", {"mrn": "NEW-1", "given_name": "Eve", "family_name": "Doe"}, format="json"
        )

        assert response.status_code == 201
        assert not AccessLogEntry.objects.exists()

    def test_model_versions_are_not_patient_data(self, api_client):
        response = api_client.get("/api/v1/model-versions/")

        assert response.status_code == 200
        assert not AccessLogEntry.objects.exists()


class TestFailureIsolation:
    def test_a_failing_log_write_does_not_break_the_response(self, client, sonographer, study, monkeypatch, caplog):
        def broken(**kwargs):
            raise RuntimeError("database gone")

        monkeypatch.setattr("fetalsite.audit.middleware.access_log_record", broken)
        client.force_login(sonographer)

        with caplog.at_level(logging.ERROR, logger="fetalsite.audit.middleware"):
            response = client.get(f"/studies/{study.id}/")

        assert response.status_code == 200
        assert "Could not write the access log entry" in caplog.text
