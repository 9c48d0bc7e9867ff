"""A list's entry names every patient the response showed, inside the hash, at most one query more."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from fetalsite.audit.chain import entry_canonical_json, entry_fields
from fetalsite.audit.models import AccessLogEntry
from fetalsite.audit.selectors import access_log_verify
from fetalsite.audit.services import access_log_record
from tests.audit.test_commands import _raw
from tests.factories import PatientFactory, StudyFactory, UserFactory

pytestmark = pytest.mark.django_db


def _only_entry() -> AccessLogEntry:
    return AccessLogEntry.objects.get()


class TestApiLists:
    def test_patient_list_names_the_patients_of_the_page_only(self, api_client, integrator, south):
        patients = PatientFactory.create_batch(3, clinic=integrator.clinic)
        PatientFactory(clinic=south)  # another clinic's patient is never listed, so never named

        response = api_client.get("/api/v1/patients/", {"limit": 2, "offset": 1})

        assert response.status_code == 200
        listed = {item["id"] for item in response.json()["results"]}
        assert len(listed) == 2 and listed < {p.id for p in patients}
        entry = _only_entry()
        assert (entry.action, entry.object_type, entry.patient_id) == ("LIST", "patient", None)
        assert entry.patient_ids == sorted(listed)

    @pytest.mark.parametrize("path", ["studies", "images", "jobs", "predictions"])
    def test_every_list_names_the_patients_behind_its_items(self, api_client, north_records, path):
        response = api_client.get(f"/api/v1/{path}/")

        assert response.status_code == 200 and response.json()["count"] == 1
        assert _only_entry().patient_ids == [north_records["patient_id"]]

    def test_an_empty_page_says_it_showed_nobody(self, api_client, study):
        api_client.get("/api/v1/patients/", {"offset": 50})

        assert _only_entry().patient_ids == []

    def test_naming_the_patients_costs_one_query_whatever_the_page_size(self, api_client, sonographer):
        def queries_for_list_of(image_count: int) -> int:
            for _ in range(image_count):
                StudyFactory(patient__clinic=sonographer.clinic, created_by=sonographer)
            with CaptureQueriesContext(connection) as captured:
                api_client.get("/api/v1/studies/")
            return len(captured)

        assert queries_for_list_of(1) == queries_for_list_of(5)
        assert len(AccessLogEntry.objects.order_by("-id").first().patient_ids) == 6

    def test_images_list_looks_its_patients_up_in_one_query(self, api_client, north_records):
        with CaptureQueriesContext(connection) as captured:
            api_client.get("/api/v1/images/")

        lookups = [q["sql"] for q in captured if "patient_id" in q["sql"] and '"id" IN (' in q["sql"]]
        assert len(lookups) == 1


class TestPages:
    def test_worklist_names_the_patients_of_its_studies(self, client, sonographer):
        shown = [StudyFactory(patient__clinic=sonographer.clinic, created_by=sonographer) for _ in range(2)]
        client.force_login(sonographer)

        response = client.get("/")

        assert response.status_code == 200
        entry = _only_entry()
        assert (entry.action, entry.object_type) == ("LIST", "study")
        assert entry.patient_ids == sorted(study.patient_id for study in shown)

    def test_worklist_search_names_the_patients_found(self, client, sonographer):
        found = PatientFactory(clinic=sonographer.clinic, family_name="Quixote")  # no study: only the search shows it
        PatientFactory(clinic=sonographer.clinic, family_name="Other")
        client.force_login(sonographer)

        response = client.get("/", {"q": "Quixote"})

        assert found.mrn in response.content.decode()
        assert _only_entry().patient_ids == [found.id]

    def test_study_images_fragment_names_the_studys_patient(self, client, sonographer, north_records):
        client.force_login(sonographer)

        response = client.get(f"/studies/{north_records['study_id']}/images/")

        assert response.status_code == 200
        entry = _only_entry()
        assert (entry.action, entry.object_type, entry.patient_ids) == ("LIST", "image", [north_records["patient_id"]])

    def test_admin_patient_list_names_the_patients_of_its_page(self, client, study):
        admin_user = UserFactory(username="root", clinic=None, is_staff=True, is_superuser=True, role=None)
        other = PatientFactory(clinic=study.patient.clinic)
        client.force_login(admin_user)

        response = client.get("/admin/patients/patient/")

        assert response.status_code == 200
        assert _only_entry().patient_ids == sorted([study.patient_id, other.id])

    def test_a_single_records_page_names_no_list(self, client, sonographer, study):
        client.force_login(sonographer)

        client.get(f"/studies/{study.id}/")

        assert _only_entry().patient_ids is None


class TestChain:
    def test_the_list_of_patients_is_hashed_and_entries_without_it_keep_their_form(self, sonographer):
        listed = access_log_record(
            user=sonographer, action="LIST", object_type="patient", patient_ids=[3, 1, 3], path="/", method="GET"
        )
        single = access_log_record(user=sonographer, action="VIEW", object_type="patient", path="/", method="GET")

        assert listed.patient_ids == [1, 3]
        assert '"patient_ids":[1,3]' in entry_canonical_json(fields=entry_fields(listed), prev_hash=listed.prev_hash)
        # An entry without a list hashes exactly as entries did before the field existed.
        assert "patient_ids" not in entry_canonical_json(fields=entry_fields(single), prev_hash=single.prev_hash)
        assert access_log_verify().ok

    def test_changing_the_patients_shown_breaks_the_chain(self, sonographer):
        entry = access_log_record(
            user=sonographer, action="LIST", object_type="patient", patient_ids=[1, 2], path="/", method="GET"
        )

        _raw("UPDATE audit_accesslogentry SET patient_ids = %s WHERE id = %s", ["[1]", entry.id])

        report = access_log_verify()
        assert not report.ok and report.broken_entry_id == entry.id

    def test_removing_the_patients_shown_breaks_the_chain(self, sonographer):
        entry = access_log_record(
            user=sonographer, action="LIST", object_type="patient", patient_ids=[], path="/", method="GET"
        )

        _raw("UPDATE audit_accesslogentry SET patient_ids = NULL WHERE id = %s", [entry.id])

        assert access_log_verify().broken_entry_id == entry.id
