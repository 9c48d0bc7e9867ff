"""A patient's MRN is unique within the clinic: a taken MRN is a 409 naming the patient who has it, also
when two requests race, and get-or-create by MRN registers a patient at most once."""

from __future__ import annotations

import datetime
import threading

import pytest
from django.db import connection, connections

from patients.models import Patient
from patients.selectors import patient_get_by_mrn
from patients.services import (
    DETAIL_DIFFERS,
    MrnExists,
    PatientDetailsDiffer,
    patient_create,
    patient_get_or_create,
    patient_update,
)
from tests.conftest import wait_for
from tests.factories import PatientFactory

MARIA = {"given_name": "Maria", "family_name": "Rossi", "birth_date": datetime.date(1991, 4, 2)}


class TestPatientUpdateMrn:
    def test_changing_the_mrn_to_a_taken_one_is_refused_with_the_existing_id(self, sonographer):
        taken = PatientFactory(clinic=sonographer.clinic, mrn="T-1")
        patient = PatientFactory(clinic=sonographer.clinic, mrn="T-2")

        with pytest.raises(MrnExists) as refused:
            patient_update(patient=patient, updated_by=sonographer, mrn=" T-1 ")

        assert refused.value.extra == {"existing_id": taken.id}
        assert Patient.objects.get(id=patient.id).mrn == "T-2"

    def test_keeping_its_own_mrn_is_no_conflict(self, sonographer):
        patient = PatientFactory(clinic=sonographer.clinic, mrn="T-2")

        patient_update(patient=patient, updated_by=sonographer, mrn="T-2", family_name="Bianchi")

        assert Patient.objects.get(id=patient.id).family_name == "Bianchi"


class TestPatientGetOrCreate:
    def test_registers_the_patient_once_then_returns_it_unchanged(self, sonographer):
        created, was_created = patient_get_or_create(created_by=sonographer, mrn=" G-1 ", **MARIA)
        again, again_created = patient_get_or_create(created_by=sonographer, mrn="G-1", **MARIA)

        assert (was_created, again_created) == (True, False)
        assert again.id == created.id and created.mrn == "G-1"
        assert created.history.count() == 1  # the second call wrote nothing

    def test_other_details_name_each_field_that_differs_and_change_nothing(self, sonographer):
        existing, _ = patient_get_or_create(created_by=sonographer, mrn="G-2", **MARIA)

        with pytest.raises(PatientDetailsDiffer) as refused:
            patient_get_or_create(
                created_by=sonographer, mrn="G-2", given_name="Maria", family_name="Rossi-Bianchi", birth_date=None
            )

        assert refused.value.fields == {"family_name": [DETAIL_DIFFERS], "birth_date": [DETAIL_DIFFERS]}
        assert refused.value.extra == {"existing_id": existing.id}
        assert Patient.objects.get(id=existing.id).family_name == "Rossi"
        assert existing.history.count() == 1

    def test_is_refused_to_a_role_that_may_not_register(self, clinician, north):
        from django.core.exceptions import PermissionDenied

        from fetalsite.accounts.roles import Role
        from tests.factories import UserFactory

        admin = UserFactory(clinic=north, role=Role.CLINIC_ADMIN)
        PatientFactory(clinic=north, mrn="G-3", **MARIA)

        with pytest.raises(PermissionDenied):
            patient_get_or_create(created_by=admin, mrn="G-3", **MARIA)


class TestPatientGetByMrn:
    def test_finds_only_the_users_clinics_patient(self, sonographer, south_sonographer):
        north_patient = PatientFactory(clinic=sonographer.clinic, mrn="S/1 ?")
        PatientFactory(clinic=south_sonographer.clinic, mrn="S/1 ?")

        assert patient_get_by_mrn(user=sonographer, mrn=" S/1 ? ") == north_patient
        assert patient_get_by_mrn(user=south_sonographer, mrn="S/1 ?") != north_patient

    def test_another_clinics_mrn_is_not_found(self, sonographer, south_sonographer):
        from django.http import Http404

        PatientFactory(clinic=south_sonographer.clinic, mrn="ONLY-SOUTH")

        with pytest.raises(Http404):
            patient_get_by_mrn(user=sonographer, mrn="ONLY-SOUTH")


def _waiting_for_a_lock() -> bool:
    """Whether another session of this test database waits on a lock (the racing INSERT)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0] > 0


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs concurrent writers: PostgreSQL")
class TestConcurrentRegistration:
    """Two requests register the same MRN at once: both pass validation, the database's unique constraint
    stops the second INSERT, and the second request still gets the 409 with the first one's id."""

    def _race(self, sonographer, second_call):
        from django.db import transaction

        connected, go, outcome = threading.Event(), threading.Event(), {}

        def second():
            try:
                connections["default"].ensure_connection()
                connected.set()
                go.wait(timeout=30)
                outcome["value"] = second_call()
            except Exception as error:  # noqa: BLE001 (handed to the test thread, which asserts on it)
                outcome["error"] = error
            finally:
                connections.close_all()

        thread = threading.Thread(target=second)
        thread.start()
        assert connected.wait(timeout=30)
        with transaction.atomic():
            first = patient_create(created_by=sonographer, mrn="RACE-1", **MARIA)
            go.set()
            # The second INSERT waits on our uncommitted row's index entry: it has passed validation.
            wait_for(_waiting_for_a_lock, timeout=30, interval=0.05)
        thread.join(timeout=30)
        return first, outcome

    def test_the_losing_create_is_a_409_with_the_winners_id(self, transactional_db, sonographer):
        first, outcome = self._race(sonographer, lambda: patient_create(created_by=sonographer, mrn="RACE-1", **MARIA))

        assert isinstance(outcome.get("error"), MrnExists), outcome
        assert outcome["error"].extra == {"existing_id": first.id}
        assert Patient.objects.filter(mrn="RACE-1").count() == 1

    def test_the_losing_get_or_create_returns_the_winners_patient(self, transactional_db, sonographer):
        first, outcome = self._race(
            sonographer, lambda: patient_get_or_create(created_by=sonographer, mrn="RACE-1", **MARIA)
        )

        assert "error" not in outcome, outcome
        assert (outcome["value"][0].id, outcome["value"][1]) == (first.id, False)
