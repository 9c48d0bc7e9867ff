"""An Idempotency-Key replays only the very request it was first sent with (uploads: tests/api/test_images.py)."""

from __future__ import annotations

import json

from fetalsite.core.models import IdempotencyKey
from patients.models import Patient, Study

PATIENT = {"mrn": "N-1", "given_name": "Maria", "family_name": "Rossi"}


def _post(client, url: str, body: str, key: str):
    return client.post(url, data=body, content_type="application/json", HTTP_IDEMPOTENCY_KEY=key)


class TestIdempotencyKeyBoundToTheBody:
    def test_the_same_json_in_another_key_order_and_spacing_is_replayed(self, api_client):
        first = _post(api_client, "/api/v1/patients/", json.dumps(PATIENT), "k-1")
        reordered = json.dumps(dict(reversed(PATIENT.items())), indent=2)
        retried = _post(api_client, "/api/v1/patients/", reordered, "k-1")

        assert first.status_code == retried.status_code == 201
        assert retried.headers["Idempotent-Replayed"] == "true"
        assert retried.json() == first.json()
        assert Patient.objects.count() == 1

    def test_a_different_json_body_is_a_422_and_changes_nothing(self, api_client):
        """The probe: the second patient was silently dropped behind the first one's answer."""
        first = _post(api_client, "/api/v1/patients/", json.dumps(PATIENT), "k-2")
        other = _post(api_client, "/api/v1/patients/", json.dumps({**PATIENT, "mrn": "N-2"}), "k-2")
        again = _post(api_client, "/api/v1/patients/", json.dumps(PATIENT), "k-2")

        assert first.status_code == 201
        assert other.status_code == 422
        assert other.json() == {
            "detail": "This Idempotency-Key was already used with a different request body; "
            "use a new key for a new request.",
            "code": "idempotency_key_mismatch",
        }
        assert list(Patient.objects.values_list("mrn", flat=True)) == ["N-1"]
        # The key still belongs to the first request, which is still replayed.
        assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"

    def test_a_different_body_is_refused_even_while_the_first_is_in_progress(self, api_client, integrator, study):
        body = {"patient": study.patient_id, "exam_date": "2026-11-27"}
        first = _post(api_client, "/api/v1/studies/", json.dumps(body), "k-3")
        IdempotencyKey.objects.filter(user=integrator, key="k-3").update(response_status=None, response_body=None)

        other = _post(api_client, "/api/v1/studies/", json.dumps({**body, "notes": "x"}), "k-3")
        same = _post(api_client, "/api/v1/studies/", json.dumps(body), "k-3")

        assert first.status_code == 201
        assert other.status_code == 422 and other.json()["code"] == "idempotency_key_mismatch"
        assert same.status_code == 409 and same.json()["code"] == "idempotency_in_progress"
        assert Study.objects.count() == 2  # the fixture's and the first request's


class TestCreatedRecordsAreNamedInLocation:
    def test_a_new_patient_and_its_replay_name_its_url(self, api_client):
        first = _post(api_client, "/api/v1/patients/", json.dumps(PATIENT), "k-loc-1")
        replayed = _post(api_client, "/api/v1/patients/", json.dumps(PATIENT), "k-loc-1")

        assert (first.status_code, replayed.status_code) == (201, 201)
        assert first["Location"] == replayed["Location"] == f"/api/v1/patients/{first.json()['id']}/"
        assert api_client.get(first["Location"]).json() == first.json()

    def test_a_new_study_names_its_url(self, api_client, study):
        body = {"patient": study.patient_id, "exam_date": "2026-11-27"}

        created = _post(api_client, "/api/v1/studies/", json.dumps(body), "k-loc-2")

        assert created.status_code == 201
        assert created["Location"] == f"/api/v1/studies/{created.json()['id']}/"
        assert "Idempotent-Replayed" not in created
