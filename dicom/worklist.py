"""The Modality Worklist (C-FIND, PS3.4 K.6): what a query identifier asks for, and the identifier each scheduled
study answers with. Pure DICOM translation; the studies come from dicom.selectors.worklist_studies."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from pydicom.dataset import Dataset

MODALITY = "US"
_DATE = r"\d{8}"
_RANGE = re.compile(rf"^(?P<start>{_DATE})?(?P<dash>-)?(?P<end>{_DATE})?$")


class QueryNotUnderstood(ValueError):
    """An identifier the SCP cannot match on (a malformed date or range): answered with a failure status."""


def has_wildcards(value: str) -> bool:
    return "*" in value or "?" in value


def wildcard_regex(value: str) -> str:
    """DICOM wildcard matching (PS3.4 C.2.2.2.4) as a regular expression: ``*`` any run, ``?`` one character,
    the rest literally; for Python's re and the database's ``__regex`` alike."""
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in value)


def _pattern(value: str) -> re.Pattern[str]:
    return re.compile(wildcard_regex(value), re.IGNORECASE | re.DOTALL)


def _date(value: str) -> date:
    try:
        return datetime.strptime(value, "%Y%m%d").date()
    except ValueError as error:
        raise QueryNotUnderstood(f"not a date: {value!r}") from error


def _date_range(value: str) -> tuple[date | None, date | None]:
    """``YYYYMMDD``, ``YYYYMMDD-YYYYMMDD``, ``YYYYMMDD-`` or ``-YYYYMMDD`` (empty: any date)."""
    value = value.strip()
    match = _RANGE.match(value)
    if not value or value == "-":
        return None, None
    if match is None or not (match["start"] or match["end"]):
        raise QueryNotUnderstood(f"not a date or date range: {value!r}")
    start = _date(match["start"]) if match["start"] else None
    end = _date(match["end"]) if match["end"] else None
    if not match["dash"]:
        end = start
    return start, end


def _text(identifier: Dataset, keyword: str) -> str:
    value = identifier.get(keyword)
    return str(value).strip() if value is not None else ""


@dataclass(frozen=True)
class WorklistCriteria:
    """The matching keys a worklist query gives (empty or absent keys match anything)."""

    date_from: date | None = None
    date_to: date | None = None
    modality: str = ""
    station_ae_title: str = ""
    patient_id: str = ""
    accession_number: str = ""
    patient_name: str = ""

    @classmethod
    def from_identifier(cls, identifier: Dataset) -> WorklistCriteria:
        step = Dataset()
        sequence = identifier.get("ScheduledProcedureStepSequence")
        if sequence:
            step = sequence[0]
        start, end = _date_range(_text(step, "ScheduledProcedureStepStartDate"))
        return cls(
            date_from=start,
            date_to=end,
            modality=_text(step, "Modality"),
            station_ae_title=_text(step, "ScheduledStationAETitle"),
            patient_id=_text(identifier, "PatientID"),
            accession_number=_text(identifier, "AccessionNumber"),
            patient_name=_text(identifier, "PatientName"),
        )

    def asks_for_other(self, *, calling_ae_title: str) -> bool:
        """A query for another modality or another station's items: nothing of ours matches it."""
        if self.modality and not _pattern(self.modality).fullmatch(MODALITY):
            return True
        return bool(self.station_ae_title) and not _pattern(self.station_ae_title).fullmatch(calling_ae_title)

    def matches(self, study) -> bool:
        checks = ((self.patient_id, study.patient.mrn), (self.accession_number, study.accession_number))
        if any(key and not _pattern(key).fullmatch(value) for key, value in checks):
            return False
        return self.name_matches(study.patient.family_name, study.patient.given_name)

    def name_matches(self, family_name: str, given_name: str) -> bool:
        """Against ``Family^Given``; a key without ``^`` may also name the family alone (``SMITH``, ``SM*``)."""
        if not self.patient_name:
            return True
        pattern = _pattern(self.patient_name.rstrip("^"))
        full = f"{family_name}^{given_name}"
        return bool(pattern.fullmatch(full) or ("^" not in self.patient_name and pattern.fullmatch(family_name)))


def worklist_identifier(study, *, station_ae_title: str) -> Dataset:
    """The answer for one scheduled study: the patient, the accession number, the Study Instance UID the machine's
    images must carry to land in this study, and one scheduled procedure step (US, this station, the date)."""
    patient = study.patient
    identifier = Dataset()
    identifier.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: names are whatever the clinic typed
    identifier.PatientName = f"{patient.family_name}^{patient.given_name}"
    identifier.PatientID = patient.mrn
    identifier.PatientBirthDate = patient.birth_date.strftime("%Y%m%d") if patient.birth_date else ""
    identifier.AccessionNumber = study.accession_number
    identifier.StudyInstanceUID = study.study_instance_uid or ""
    identifier.RequestedProcedureDescription = study.requested_procedure
    identifier.RequestedProcedureID = str(study.id)
    step = Dataset()
    step.Modality = MODALITY
    step.ScheduledStationAETitle = station_ae_title
    step.ScheduledProcedureStepStartDate = study.scheduled_date.strftime("%Y%m%d")
    step.ScheduledProcedureStepDescription = study.requested_procedure
    step.ScheduledProcedureStepID = str(study.id)
    identifier.ScheduledProcedureStepSequence = [step]
    return identifier
