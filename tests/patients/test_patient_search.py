"""Finding patients (issue 19, item 6): search folds accents and case and matches every word in any order, on
the worklist, the patient list and the API; an MRN is one record whatever its case; studies newest first."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection
from django.urls import reverse

from fetalsite.core.text import search_words
from patients.models import Patient
from patients.selectors import patient_get_by_mrn, patient_list, study_list
from patients.services import MrnExists, patient_create, patient_get_or_create, patient_update
from tests.conftest import _token_client
from tests.factories import PatientFactory, StudyFactory
from tests.patients import test_patient_mrn  # the module, so its tests are not collected here again

ZOE = {"given_name": "Zoë", "family_name": "Núñez", "birth_date": datetime.date(1992, 3, 1)}


@pytest.fixture
def zoe(sonographer):
    return patient_create(created_by=sonographer, mrn="N-2024-0815", **ZOE)


class TestSearchText:
    def test_create_and_update_keep_the_folded_names_and_mrn(self, sonographer, zoe):
        assert Patient.objects.get(id=zoe.id).search_text == "zoe nunez n-2024-0815"

        patient_update(patient=zoe, updated_by=sonographer, family_name="Gómez Ørsted")

        assert Patient.objects.get(id=zoe.id).search_text == "zoe gomez orsted n-2024-0815"

    def test_query_words_drop_punctuation_and_accents(self):
        assert search_words("  Núñez,  ZOË ") == ["nunez", "zoe"]
        assert search_words("-") == ["-"]
        assert search_words("") == []


class TestPatientSearch:
    @pytest.mark.parametrize("query", ["zoe", "ZOE", "nunez", "zoe nunez", "Nunez, Zoë", "núñez zo", "2024-0815"])
    def test_finds_zoe_without_accents_case_or_word_order(self, sonographer, zoe, query):
        PatientFactory(clinic=sonographer.clinic, given_name="Zoran", family_name="Novak")

        assert list(patient_list(user=sonographer, search=query)) == [zoe]

    def test_every_word_must_match(self, sonographer, zoe):
        assert list(patient_list(user=sonographer, search="zoe gomez")) == []

    def test_another_clinics_patient_is_not_found(self, zoe, south_sonographer):
        assert list(patient_list(user=south_sonographer, search="zoe")) == []

    def test_the_worklist_finds_zoes_studies_and_zoe(self, client, sonographer, zoe):
        study = StudyFactory(patient=zoe, created_by=sonographer)
        StudyFactory(patient__clinic=sonographer.clinic, created_by=sonographer)
        client.force_login(sonographer)

        response = client.get(reverse("home"), {"q": "nunez zoe"})

        assert [s.id for s in response.context["studies"]] == [study.id]
        assert [p.id for p in response.context["patients"]] == [zoe.id]
        assert list(study_list(user=sonographer, filters={"search": "Zoe"})) == [study]

    def test_the_api_searches_patients_and_studies_the_same_way(self, sonographer, zoe):
        study = StudyFactory(patient=zoe, created_by=sonographer)
        api = _token_client(sonographer)

        patients = api.get("/api/v1/patients/", {"search": "zoe nunez"}).json()["results"]
        studies = api.get("/api/v1/studies/", {"search": "NUNEZ"}).json()["results"]

        assert [p["id"] for p in patients] == [zoe.id]
        assert [s["id"] for s in studies] == [study.id]


class TestMrnAnyCase:
    def test_a_lower_case_copy_is_refused_naming_the_patient(self, sonographer, zoe):
        with pytest.raises(MrnExists) as refused:
            patient_create(created_by=sonographer, mrn="n-2024-0815", given_name="Z", family_name="N")

        assert refused.value.extra == {"existing_id": zoe.id}

    def test_an_edit_to_another_case_of_a_taken_mrn_is_refused(self, sonographer, zoe):
        other = PatientFactory(clinic=sonographer.clinic, mrn="X-1")

        with pytest.raises(MrnExists) as refused:
            patient_update(patient=other, updated_by=sonographer, mrn="n-2024-0815")

        assert refused.value.extra == {"existing_id": zoe.id}

    def test_a_patient_may_change_the_case_of_its_own_mrn(self, sonographer, zoe):
        patient_update(patient=zoe, updated_by=sonographer, mrn="n-2024-0815")

        assert Patient.objects.get(id=zoe.id).mrn == "n-2024-0815"

    def test_another_clinic_may_have_it(self, zoe, south_sonographer):
        assert patient_create(created_by=south_sonographer, mrn="n-2024-0815", **ZOE).id != zoe.id

    def test_get_by_mrn_and_get_or_create_find_it_in_any_case(self, sonographer, zoe):
        assert patient_get_by_mrn(user=sonographer, mrn="n-2024-0815") == zoe
        assert patient_get_or_create(created_by=sonographer, mrn="n-2024-0815", **ZOE) == (zoe, False)

    def test_the_form_shows_the_409_with_a_link(self, client, sonographer, zoe):
        client.force_login(sonographer)
        data = {"mrn": "n-2024-0815", "given_name": "Zoe", "family_name": "Nunez", "birth_date": ""}

        response = client.post(reverse("patient-create"), data)

        assert response.status_code == 200
        assert f'<a href="/patients/{zoe.id}/">Open that patient</a>'.encode() in response.content
        assert Patient.objects.count() == 1

    def test_the_api_answers_409_mrn_exists_and_finds_it_by_mrn(self, sonographer, zoe):
        api = _token_client(sonographer)

        created = api.post("/api/v1/patients/", {"mrn": "n-2024-0815", "given_name": "Z", "family_name": "N"})
        found = api.get("/api/v1/patients/by-mrn/n-2024-0815/")

        assert created.status_code == 409
        assert (created.json()["code"], created.json()["existing_id"]) == ("mrn_exists", zoe.id)
        assert (found.status_code, found.json()["id"]) == (200, zoe.id)


class TestStudiesNewestFirst:
    def test_the_patient_page_and_api_list_the_newest_exam_first(self, client, sonographer, zoe):
        dates = [datetime.date(2024, 5, 1), datetime.date(2025, 1, 2), datetime.date(2024, 9, 9)]
        studies = [StudyFactory(patient=zoe, exam_date=day, created_by=sonographer) for day in dates]
        newest_first = [studies[1].id, studies[2].id, studies[0].id]
        client.force_login(sonographer)

        page = client.get(reverse("patient-detail", args=[zoe.id]))
        api = _token_client(sonographer).get("/api/v1/studies/", {"patient": zoe.id}).json()["results"]

        assert [s.id for s in page.context["studies"]] == newest_first
        assert [s["id"] for s in api] == newest_first


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs concurrent writers: PostgreSQL")
def test_a_racing_create_in_another_case_is_the_same_409(transactional_db, sonographer):
    """Both requests pass validation; the Lower(mrn) constraint stops the second INSERT, which then names the
    first patient, as for the same spelling (tests/patients/test_patient_mrn.py)."""
    race = test_patient_mrn.TestConcurrentRegistration()._race
    maria = test_patient_mrn.MARIA
    first, outcome = race(sonographer, lambda: patient_create(created_by=sonographer, mrn="race-1", **maria))

    assert isinstance(outcome.get("error"), MrnExists), outcome
    assert outcome["error"].extra == {"existing_id": first.id}
    assert Patient.objects.filter(mrn__iexact="RACE-1").count() == 1
