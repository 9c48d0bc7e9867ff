"""Scheduling a study for the modality worklist (docs/dicom.md): a scheduled date, an accession number and a
requested procedure, through the services, the study form and the API."""

from __future__ import annotations

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from patients.models import Study
from patients.services import study_create, study_update
from tests.factories import PatientFactory


def _day(offset: int) -> datetime.date:
    return timezone.localdate() + datetime.timedelta(days=offset)


@pytest.fixture
def patient(north, sonographer):
    return PatientFactory(clinic=north, created_by=sonographer)


def _schedule(patient, user, **fields) -> Study:
    return study_create(patient=patient, exam_date=_day(0), created_by=user, **fields)


class TestServices:
    def test_scheduling_gives_the_study_a_uid_the_worklist_hands_out(self, patient, sonographer):
        study = _schedule(patient, sonographer, scheduled_date=_day(7), accession_number=" A-1 ")
        assert study.scheduled_date == _day(7) and study.accession_number == "A-1"
        assert study.study_instance_uid and study.study_instance_uid.startswith("1.2.")
        assert _schedule(patient, sonographer).study_instance_uid is None  # unscheduled: the first file's UID

    def test_scheduling_later_keeps_one_uid(self, patient, sonographer):
        study = _schedule(patient, sonographer)
        study = study_update(study=study, updated_by=sonographer, scheduled_date=_day(1))
        uid = Study.objects.get(id=study.id).study_instance_uid
        assert uid
        study_update(study=study, updated_by=sonographer, scheduled_date=_day(2), requested_procedure="Growth scan")
        assert Study.objects.get(id=study.id).study_instance_uid == uid

    @pytest.mark.parametrize(
        ("fields", "field"),
        [
            ({"scheduled_date": _day(-1)}, "scheduled_date"),
            ({"accession_number": "A" * 17}, "accession_number"),
            ({"accession_number": "A\\B"}, "accession_number"),
            ({"accession_number": "A\tB"}, "accession_number"),
            ({"requested_procedure": "scan\\twice"}, "requested_procedure"),
        ],
        ids=["past-date", "accession-too-long", "accession-backslash", "accession-control", "procedure-backslash"],
    )
    def test_refused_values_name_their_field(self, patient, sonographer, fields, field):
        with pytest.raises(ValidationError) as refused:
            _schedule(patient, sonographer, **fields)
        assert field in refused.value.message_dict
        assert not Study.objects.exists()

    def test_today_may_be_scheduled_and_a_past_date_stays_once_it_passed(self, patient, sonographer):
        study = _schedule(patient, sonographer, scheduled_date=_day(0))
        Study.objects.filter(id=study.id).update(scheduled_date=_day(-3))  # the day went by
        study.refresh_from_db()
        study_update(study=study, updated_by=sonographer, notes="seen")  # other edits still work
        with pytest.raises(ValidationError, match="past"):
            study_update(study=study, updated_by=sonographer, scheduled_date=_day(-1))

    def test_an_accession_number_is_unique_in_the_clinic_only(self, patient, sonographer, south, south_sonographer):
        _schedule(patient, sonographer, accession_number="A-9")
        with pytest.raises(ValidationError, match="Another study"):
            _schedule(patient, sonographer, accession_number="A-9")
        other = _schedule(patient, sonographer)
        with pytest.raises(ValidationError, match="Another study"):
            study_update(study=other, updated_by=sonographer, accession_number="A-9")
        south_patient = PatientFactory(clinic=south, created_by=south_sonographer)
        assert _schedule(south_patient, south_sonographer, accession_number="A-9").accession_number == "A-9"
        assert _schedule(patient, sonographer, accession_number="").accession_number == ""  # blank: many


class TestPage:
    def test_the_study_form_schedules_and_the_study_page_shows_it(self, client, patient, sonographer):
        client.force_login(sonographer)
        url = reverse("study-create", args=[patient.id])
        form = {"exam_date": _day(0).isoformat(), "scheduled_date": _day(5).isoformat()}
        response = client.post(url, {**form, "accession_number": "ACC-77", "requested_procedure": "Anomaly scan"})
        study = Study.objects.get(patient=patient)
        assert response.status_code == 302 and study.scheduled_date == _day(5) and study.study_instance_uid
        page = client.get(reverse("study-detail", args=[study.id])).content.decode()
        assert "ACC-77" in page and "Anomaly scan" in page

    def test_a_past_date_is_shown_on_the_form(self, client, patient, sonographer):
        client.force_login(sonographer)
        url = reverse("study-create", args=[patient.id])
        response = client.post(url, {"exam_date": _day(0).isoformat(), "scheduled_date": _day(-2).isoformat()})
        assert response.status_code == 200 and "cannot be in the past" in response.content.decode()
        assert not Study.objects.exists()


class TestApi:
    def test_create_and_patch_a_schedule(self, api_client, patient):
        body = {"patient": patient.id, "exam_date": _day(0).isoformat(), "scheduled_date": _day(3).isoformat()}
        created = api_client.post("/api/v1/studies/", {**body, "accession_number": "ACC-1"}, format="json")
        assert created.status_code == 201, created.json()
        data = created.json()
        assert (data["scheduled_date"], data["accession_number"]) == (_day(3).isoformat(), "ACC-1")
        assert data["study_instance_uid"] and data["requested_procedure"] == ""
        patched = api_client.patch(
            f"/api/v1/studies/{data['id']}/", {"requested_procedure": "Growth scan"}, format="json"
        )
        assert patched.status_code == 200 and patched.json()["requested_procedure"] == "Growth scan"

    def test_refusals_answer_400_with_the_field(self, api_client, patient):
        body = {"patient": patient.id, "exam_date": _day(0).isoformat()}
        assert (
            api_client.post("/api/v1/studies/", {**body, "accession_number": "X-1"}, format="json").status_code == 201
        )
        taken = api_client.post("/api/v1/studies/", {**body, "accession_number": "X-1"}, format="json")
        past = api_client.post("/api/v1/studies/", {**body, "scheduled_date": _day(-1).isoformat()}, format="json")
        long = api_client.post("/api/v1/studies/", {**body, "accession_number": "X" * 17}, format="json")
        assert [r.status_code for r in (taken, past, long)] == [400, 400, 400]
        assert "accession_number" in taken.json()["fields"] and "scheduled_date" in past.json()["fields"]
        assert "accession_number" in long.json()["fields"]
