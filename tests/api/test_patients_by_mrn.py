"""Find a patient by MRN, and register one by MRN unless registered (create-or-get), through the API."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from fetalsite.audit.models import AccessLogEntry
from patients.models import Patient
from tests.factories import PatientFactory

MARIA = {"given_name": "Maria", "family_name": "Rossi", "birth_date": "1991-04-02"}
# An MRN with everything a path finds awkward: slashes, a space, ?, #, %, a dot segment and non-ASCII.
AWKWARD_MRN = "A/B 7?#%/../ü"


def by_mrn(mrn: str) -> str:
    return f"/api/v1/patients/by-mrn/{quote(mrn, safe='')}/"


def put(client, mrn: str, body: dict, **headers):
    return client.put(by_mrn(mrn), json.dumps(body), content_type="application/json", **headers)


class TestPatientByMrnGet:
    def test_finds_the_patient_and_logs_the_read(self, api_client, north, integrator):
        patient = PatientFactory(clinic=north, mrn="N-100")

        response = api_client.get(by_mrn("N-100"))

        assert response.status_code == 200
        assert response.json()["id"] == patient.id
        entry = AccessLogEntry.objects.filter(user=integrator).latest("id")
        assert entry.patient_ids == [patient.id]

    def test_an_awkward_mrn_is_found_percent_encoded(self, api_client, north):
        patient = PatientFactory(clinic=north, mrn=AWKWARD_MRN)

        response = api_client.get(by_mrn(AWKWARD_MRN))

        assert response.status_code == 200
        assert response.json()["id"] == patient.id

    def test_unknown_and_another_clinics_mrns_are_the_same_404(self, api_client, south):
        PatientFactory(clinic=south, mrn="S-1")

        unknown, foreign = api_client.get(by_mrn("NOBODY")), api_client.get(by_mrn("S-1"))

        assert unknown.status_code == foreign.status_code == 404
        assert unknown.json() == foreign.json() == {"detail": "Not found.", "code": "not_found"}

    @pytest.mark.parametrize("mrn", ["x" * 65, "nul\x00", "   "])
    def test_an_mrn_no_patient_can_have_is_a_400_naming_it(self, api_client, mrn):
        response = api_client.get(by_mrn(mrn))

        assert response.status_code == 400
        assert list(response.json()["fields"]) == ["mrn"]


class TestPatientByMrnPut:
    def test_registers_then_answers_the_same_patient_and_writes_nothing_more(self, api_client, north):
        created = put(api_client, "N-200", MARIA)
        again = put(api_client, "N-200", MARIA)

        assert created.status_code == 201
        assert created["Location"] == f"/api/v1/patients/{created.json()['id']}/"
        assert again.status_code == 200
        assert again.json() == created.json()
        patient = Patient.objects.get(clinic=north, mrn="N-200")
        assert patient.history.count() == 1

    def test_other_details_are_a_409_naming_each_field_and_change_nothing(self, api_client, north):
        existing = PatientFactory(clinic=north, mrn="N-300", given_name="Maria", family_name="Rossi", birth_date=None)

        response = put(api_client, "N-300", MARIA)

        assert response.status_code == 409
        assert response.json() == {
            "detail": "A patient with this MRN is registered with other details; nothing was changed.",
            "code": "patient_details_differ",
            "fields": {"birth_date": ["Differs from the patient registered under this MRN."]},
            "existing_id": existing.id,
        }
        assert Patient.objects.get(id=existing.id).birth_date is None

    def test_an_awkward_mrn_is_registered_exactly_and_located(self, api_client, north):
        created = put(api_client, AWKWARD_MRN, MARIA)

        assert created.status_code == 201
        assert created.json()["mrn"] == AWKWARD_MRN
        assert api_client.get(created["Location"]).json()["mrn"] == AWKWARD_MRN
        assert put(api_client, AWKWARD_MRN, MARIA).status_code == 200

    def test_unknown_and_missing_fields_are_400s(self, api_client):
        unknown = put(api_client, "N-400", {**MARIA, "mrn": "N-401"})
        missing = put(api_client, "N-400", {"given_name": "Maria"})

        assert unknown.status_code == missing.status_code == 400
        assert unknown.json()["fields"] == {"mrn": ["Unknown field."]}
        assert list(missing.json()["fields"]) == ["family_name"]
        assert not Patient.objects.filter(mrn__startswith="N-40").exists()

    def test_an_idempotency_key_replays_the_first_answer(self, api_client):
        first = put(api_client, "N-500", MARIA, HTTP_IDEMPOTENCY_KEY="put-1")
        replayed = put(api_client, "N-500", MARIA, HTTP_IDEMPOTENCY_KEY="put-1")

        assert (first.status_code, replayed.status_code) == (201, 201)
        assert replayed["Idempotent-Replayed"] == "true"
        assert Patient.objects.filter(mrn="N-500").count() == 1

    def test_a_role_that_may_not_register_gets_a_403_even_for_a_registered_patient(self, north):
        from fetalsite.accounts.roles import Role
        from tests.conftest import _token_client
        from tests.factories import UserFactory

        PatientFactory(clinic=north, mrn="N-600", given_name="Maria", family_name="Rossi")
        admin = _token_client(UserFactory(clinic=north, role=Role.CLINIC_ADMIN))

        response = put(admin, "N-600", {"given_name": "Maria", "family_name": "Rossi"})

        assert response.status_code == 403
