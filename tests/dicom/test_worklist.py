"""The Modality Worklist against DCMTK's findscu: studies scheduled through the services show on the calling
machine's worklist, its clinic's only, matched by date range, MRN, name wildcards and accession number; and a
file stamped with what the worklist said, sent back with storescu, lands in that very study."""

from __future__ import annotations

import datetime
import logging
from pathlib import Path

import pydicom
import pytest
from django.utils import timezone

from dicom.services import dicom_peer_create
from fetalsite.audit.models import AccessLogEntry
from patients.models import Study
from patients.services import study_create, study_sign_off
from tests.dicom.conftest import RECEIVER_AE, SENDER_AE, dcmtk, run_dcmtk
from tests.dicom_samples import dicom_bytes
from tests.factories import PatientFactory, UserFactory

pytestmark = pytest.mark.e2e

DATE = "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate"


def _day(offset: int) -> datetime.date:
    return timezone.localdate() + datetime.timedelta(days=offset)


def _dicom_date(offset: int) -> str:
    return _day(offset).strftime("%Y%m%d")


@pytest.fixture
def scheduled(receiver_port, north, south, sonographer, south_sonographer, root):
    """North: three scheduled studies (today, in 3 and in 10 days), one unscheduled and one completed; South: one
    scheduled today, with its own sender."""
    dicom_peer_create(clinic=south, ae_title="SOUTHUS", allowed_addresses="127.0.0.1", created_by=root)

    def schedule(user, family, given, mrn, offset, accession, **extra):
        patient = PatientFactory(clinic=user.clinic, mrn=mrn, family_name=family, given_name=given, created_by=user)
        return study_create(
            patient=patient,
            exam_date=_day(0),
            created_by=user,
            scheduled_date=_day(offset) if offset is not None else None,
            accession_number=accession,
            requested_procedure="Anomaly scan",
            **extra,
        )

    studies = {
        "smith": schedule(sonographer, "Smith", "Anna", "N-1", 0, "ACC-N1"),
        "smythe": schedule(sonographer, "Smythe", "Berta", "N-2", 3, "ACC-N2"),
        "jones": schedule(sonographer, "Jones", "Carla", "N-3", 10, "ACC-N3"),
        "unscheduled": schedule(sonographer, "Smitt", "Dora", "N-4", None, "ACC-N4"),
        "completed": schedule(sonographer, "Smith", "Eva", "N-5", 0, "ACC-N5"),
        "south": schedule(south_sonographer, "Smith", "Fay", "S-1", 0, "ACC-S1"),
    }
    signer = UserFactory(clinic=sonographer.clinic, role="clinician")
    study_sign_off(study=studies["completed"], signed_by=signer, acknowledged=True)
    return studies


def findscu(port: int, out: Path, *keys: str, calling: str = SENDER_AE) -> tuple[int, list[pydicom.Dataset], str]:
    """findscu -W with the usual return keys plus ``keys`` (``Keyword=value``); the responses it wrote (-X)."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("rsp*.dcm"):
        old.unlink()
    asked = ["PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "StudyInstanceUID"]
    asked += ["RequestedProcedureDescription", f"{DATE}", "ScheduledProcedureStepSequence[0].Modality"]
    asked += ["ScheduledProcedureStepSequence[0].ScheduledStationAETitle"]
    given = {key.split("=")[0] for key in keys}
    options = ["-v", "-W", "-X", "-od", str(out)]
    for key in [*(k for k in asked if k not in given), *keys]:
        options += ["-k", key]
    result = run_dcmtk("findscu", port, options=tuple(options), calling=calling)
    answers = [pydicom.dcmread(path) for path in sorted(out.glob("rsp*.dcm"))]
    return result.returncode, answers, result.stdout + result.stderr


def _mrns(answers: list[pydicom.Dataset]) -> list[str]:
    return [str(answer.PatientID) for answer in answers]


class TestWorklist:
    def test_every_open_scheduled_study_of_the_callers_clinic_and_no_other(self, scheduled, receiver_port, tmp_path):
        code, answers, log = findscu(receiver_port, tmp_path)
        assert code == 0, log
        assert _mrns(answers) == ["N-1", "N-2", "N-3"]  # not South's, not unscheduled, not completed
        smith = scheduled["smith"]
        smith.refresh_from_db()
        first = answers[0]
        assert str(first.PatientName) == "Smith^Anna" and first.PatientBirthDate == "19900101"
        assert first.AccessionNumber == "ACC-N1" and first.RequestedProcedureDescription == "Anomaly scan"
        assert first.StudyInstanceUID == smith.study_instance_uid and smith.study_instance_uid
        step = first.ScheduledProcedureStepSequence[0]
        assert (step.Modality, step.ScheduledStationAETitle) == ("US", SENDER_AE)
        assert step.ScheduledProcedureStepStartDate == _dicom_date(0)
        shown = AccessLogEntry.objects.get(method="C-FIND")  # who was disclosed to which machine
        assert (shown.action, shown.username, shown.ip) == ("LIST", "dicom-STORESCU", "127.0.0.1")
        assert shown.patient_ids == sorted(scheduled[name].patient_id for name in ("smith", "smythe", "jones"))

    def test_the_other_clinic_sees_only_its_own(self, scheduled, receiver_port, tmp_path):
        code, answers, log = findscu(receiver_port, tmp_path, calling="SOUTHUS")
        assert code == 0, log
        assert _mrns(answers) == ["S-1"]
        assert answers[0].ScheduledProcedureStepSequence[0].ScheduledStationAETitle == "SOUTHUS"

    @pytest.mark.parametrize(
        ("key", "expected"),
        [
            (lambda: f"{DATE}={_dicom_date(0)}", ["N-1"]),
            (lambda: f"{DATE}={_dicom_date(1)}-{_dicom_date(10)}", ["N-2", "N-3"]),
            (lambda: f"{DATE}={_dicom_date(3)}-", ["N-2", "N-3"]),
            (lambda: f"{DATE}=-{_dicom_date(3)}", ["N-1", "N-2"]),
            (lambda: "PatientID=N-2", ["N-2"]),
            (lambda: "PatientName=SM*", ["N-1", "N-2"]),
            (lambda: "PatientName=sm?the^*", ["N-2"]),
            (lambda: "AccessionNumber=ACC-N3", ["N-3"]),
            (lambda: "AccessionNumber=ACC-S1", []),  # another clinic's accession number: nothing
            (lambda: "ScheduledProcedureStepSequence[0].Modality=CT", []),
        ],
        ids=[
            "today",
            "range",
            "from",
            "until",
            "mrn",
            "name-family",
            "name-wildcards",
            "accession",
            "other-clinic",
            "other-modality",
        ],
    )
    def test_matching_keys(self, scheduled, receiver_port, tmp_path, key, expected):
        code, answers, log = findscu(receiver_port, tmp_path, key())
        assert code == 0, log
        assert _mrns(answers) == expected

    def test_a_malformed_date_answers_a_failure_and_the_receiver_goes_on(
        self, scheduled, receiver_port, tmp_path, caplog
    ):
        with caplog.at_level(logging.WARNING, logger="dicom.receiver"):
            _, answers, log = findscu(receiver_port, tmp_path, f"{DATE}=2026-13-45")
        assert answers == [] and "Failed: UnableToProcess" in log, log
        assert "not a date" in caplog.text
        code, answers, log = findscu(receiver_port, tmp_path)
        assert code == 0 and _mrns(answers) == ["N-1", "N-2", "N-3"], log

    def test_an_unknown_ae_is_rejected(self, scheduled, receiver_port, tmp_path):
        code, answers, log = findscu(receiver_port, tmp_path, calling="INTRUDER")
        assert code != 0 and answers == []
        assert "Calling AE Title Not Recognized" in log

    def test_what_the_worklist_said_brings_the_machines_image_into_that_study(self, scheduled, receiver_port, tmp_path):
        _, answers, _ = findscu(receiver_port, tmp_path / "find", "PatientID=N-2")
        item = answers[0]
        data = dicom_bytes(
            patient_id=item.PatientID,
            patient_name=str(item.PatientName),
            birth_date=item.PatientBirthDate,
            study_uid=item.StudyInstanceUID,
            accession=item.AccessionNumber,
            study_date=_dicom_date(0),
        )
        image = tmp_path / "from-the-machine.dcm"
        image.write_bytes(data)
        result = run_dcmtk("storescu", receiver_port, image)
        assert result.returncode == 0, result.stdout + result.stderr
        study = scheduled["smythe"]
        assert study.images.count() == 1
        assert Study.objects.filter(patient=study.patient).count() == 1  # no second study opened


def test_findscu_is_what_the_tests_run():
    """Named so a missing DCMTK shows as a skip with its reason, not as silence."""
    dcmtk("findscu")
    assert RECEIVER_AE
