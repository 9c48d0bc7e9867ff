"""Writes of patients, studies and images. Every write goes through here."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import date

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import Storage
from django.db import IntegrityError, transaction
from django.utils import timezone

from fetalsite.accounts.roles import require_permission
from fetalsite.core.errors import ApplicationError
from patients.imaging import ImageFacts, inspect_image_bytes, sanitize_filename
from patients.models import Patient, Study, UltrasoundImage

logger = logging.getLogger(__name__)


class StudyNotOpen(ApplicationError):
    http_status = 409
    code = "study_not_open"


class MrnExists(ApplicationError):
    """The clinic has a patient with this MRN already; ``extra["existing_id"]`` is that patient's id."""

    http_status = 409
    code = "mrn_exists"


class PatientDetailsDiffer(ApplicationError):
    """Get-or-create found the MRN's patient with other details; ``fields`` names each that differs."""

    http_status = 409
    code = "patient_details_differ"


MRN_TAKEN = "A patient with this MRN is already registered in your clinic."
DETAIL_DIFFERS = "Differs from the patient registered under this MRN."


def _require_clinic(user) -> int:
    if not user.clinic_id:
        raise ValidationError({"clinic": "Your account belongs to no clinic; an admin must assign one."})
    return user.clinic_id


@transaction.atomic
def patient_create(
    *, created_by, mrn: str, given_name: str, family_name: str, birth_date: date | None = None
) -> Patient:
    require_permission(created_by, "patients.add_patient", action="register patients")
    patient = Patient(
        clinic_id=_require_clinic(created_by),
        mrn=mrn.strip(),
        given_name=given_name.strip(),
        family_name=family_name.strip(),
        birth_date=birth_date,
        created_by=created_by,
    )
    _validate_birth_date(birth_date)
    _save_with_unique_mrn(patient)
    return patient


def _refuse_taken_mrn(patient: Patient) -> None:
    """Raise MrnExists when another patient of the clinic has ``patient``'s MRN."""
    others = Patient.objects.filter(clinic_id=patient.clinic_id, mrn=patient.mrn).exclude(id=patient.id)
    existing_id = others.values_list("id", flat=True).first()
    if existing_id is not None:
        raise MrnExists(MRN_TAKEN, fields={"mrn": [MRN_TAKEN]}, extra={"existing_id": existing_id})


def _save_with_unique_mrn(patient: Patient, **save_kwargs) -> None:
    """full_clean() and save(); a taken MRN is a 409 naming the patient who has it, not the constraint's 400.

    Also under a race: a concurrent request may register the MRN after the check, and then this INSERT
    violates the unique constraint. The savepoint keeps the transaction usable to look up who won."""
    try:
        patient.full_clean()
        with transaction.atomic():
            patient.save(**save_kwargs)
    except (ValidationError, IntegrityError):
        _refuse_taken_mrn(patient)
        raise


@transaction.atomic
def patient_get_or_create(
    *, created_by, mrn: str, given_name: str, family_name: str, birth_date: date | None = None
) -> tuple[Patient, bool]:
    """The clinic's patient with this MRN, registered first when there is none: (patient, created).

    A patient already registered must have exactly these details, else PatientDetailsDiffer names each field
    that differs and nothing changes: another person under a mistyped MRN is never merged silently."""
    require_permission(created_by, "patients.add_patient", action="register patients")
    existing = Patient.objects.filter(clinic_id=_require_clinic(created_by), mrn=mrn.strip()).first()
    if existing is None:
        try:
            patient = patient_create(
                created_by=created_by, mrn=mrn, given_name=given_name, family_name=family_name, birth_date=birth_date
            )
            return patient, True
        except MrnExists as taken:  # a concurrent request registered it first
            existing = Patient.objects.get(id=taken.extra["existing_id"])
    asked = {"given_name": given_name.strip(), "family_name": family_name.strip(), "birth_date": birth_date}
    differing = {name: [DETAIL_DIFFERS] for name, value in asked.items() if getattr(existing, name) != value}
    if differing:
        raise PatientDetailsDiffer(
            "A patient with this MRN is registered with other details; nothing was changed.",
            fields=differing,
            extra={"existing_id": existing.id},
        )
    return existing, False


def _validate_birth_date(birth_date: date | None) -> None:
    if birth_date and birth_date > timezone.localdate():
        raise ValidationError({"birth_date": "The date of birth cannot be in the future."})


PATIENT_EDITABLE_FIELDS = ("mrn", "given_name", "family_name", "birth_date")


@transaction.atomic
def patient_update(*, patient: Patient, updated_by, **changes) -> Patient:
    unknown = set(changes) - set(PATIENT_EDITABLE_FIELDS)
    if unknown:
        raise ValidationError({field: "This field cannot be changed." for field in unknown})
    require_permission(updated_by, "patients.change_patient", clinic_id=patient.clinic_id, action="edit patients")
    for field, value in changes.items():
        setattr(patient, field, value.strip() if isinstance(value, str) else value)
    _validate_birth_date(patient.birth_date)
    patient._history_user = updated_by
    _save_with_unique_mrn(patient, update_fields=[*changes, "updated_at"])
    return patient


def _validate_study_dates(exam_date: date, patient: Patient) -> None:
    if exam_date > timezone.localdate():
        raise ValidationError({"exam_date": "The exam date cannot be in the future."})
    if patient.birth_date and exam_date < patient.birth_date:
        raise ValidationError({"exam_date": "The exam date is before the patient's date of birth."})


@transaction.atomic
def study_create(
    *,
    patient: Patient,
    exam_date: date,
    created_by,
    gestational_age_weeks: int | None = None,
    gestational_age_days: int | None = None,
    notes: str = "",
) -> Study:
    require_permission(created_by, "patients.add_study", action="open studies")
    if not created_by.is_superuser and patient.clinic_id != created_by.clinic_id:
        raise ValidationError({"patient": "Unknown patient."})
    _validate_study_dates(exam_date, patient)
    study = Study(
        patient=patient,
        exam_date=exam_date,
        gestational_age_weeks=gestational_age_weeks,
        gestational_age_days=gestational_age_days,
        notes=notes,
        created_by=created_by,
    )
    study.full_clean()
    study.save()
    return study


STUDY_EDITABLE_FIELDS = ("exam_date", "gestational_age_weeks", "gestational_age_days", "notes")


@transaction.atomic
def study_update(*, study: Study, updated_by, **changes) -> Study:
    unknown = set(changes) - set(STUDY_EDITABLE_FIELDS)
    if unknown:
        raise ValidationError({field: "This field cannot be changed." for field in unknown})
    require_permission(updated_by, "patients.change_study", clinic_id=study.patient.clinic_id, action="edit studies")
    for field, value in changes.items():
        setattr(study, field, value)
    _validate_study_dates(study.exam_date, study.patient)
    study._history_user = updated_by
    study.full_clean()
    study.save(update_fields=[*changes, "updated_at"])
    return study


@transaction.atomic
def study_complete(*, study: Study, completed_by) -> Study:
    require_permission(
        completed_by, "patients.change_study", clinic_id=study.patient.clinic_id, action="complete studies"
    )
    study = Study.objects.select_for_update().get(id=study.id)
    if study.status != Study.Status.COMPLETED:
        study.status = Study.Status.COMPLETED
        study._history_user = completed_by
        study.save(update_fields=["status", "updated_at"])
    return study


@dataclass(frozen=True)
class UploadResult:
    image: UltrasoundImage
    created: bool


def image_upload(*, study: Study, data: bytes, filename: str | bytes | None, uploaded_by) -> UploadResult:
    """Validate, store and queue one image; the same bytes again return the existing record."""
    return _image_upload(study=study, data=data, facts=None, filename=filename, uploaded_by=uploaded_by)


def _image_upload(
    *, study: Study, data: bytes, facts: ImageFacts | None, filename: str | bytes | None, uploaded_by
) -> UploadResult:
    """image_upload, given the facts when the caller has inspected ``data`` already: decoding is the costly part."""
    from classifier.services import classification_job_create

    require_permission(
        uploaded_by, "patients.add_ultrasoundimage", clinic_id=study.patient.clinic_id, action="upload images"
    )
    study.refresh_from_db(fields=["status"])
    if study.status != Study.Status.OPEN:
        raise StudyNotOpen("This study is completed; open a new study to add images.")
    facts = facts or inspect_image_bytes(data)
    existing = UltrasoundImage.objects.filter(study=study, sha256=facts.sha256).first()
    if existing:
        return UploadResult(image=existing, created=False)

    stored = _image_files_store(clinic_id=study.patient.clinic_id, data=data, facts=facts)
    try:
        with transaction.atomic():
            image = UltrasoundImage(
                study=study,
                file=stored.display,
                original=stored.original,
                original_filename=sanitize_filename(filename),
                sha256=facts.sha256,
                format=facts.format,
                width=facts.width,
                height=facts.height,
                byte_size=facts.byte_size,
                original_width=facts.original_width,
                original_height=facts.original_height,
                uploaded_by=uploaded_by,
            )
            image.full_clean(validate_constraints=False)
            image.save()
            classification_job_create(image=image)
    except IntegrityError:
        # A concurrent upload of the same bytes won the race: keep its record.
        stored.delete()
        existing = UltrasoundImage.objects.filter(study=study, sha256=facts.sha256).first()
        if existing is None:
            raise
        return UploadResult(image=existing, created=False)
    except BaseException:
        stored.delete()
        raise
    return UploadResult(image=image, created=True)


@dataclass(frozen=True)
class _StoredFiles:
    """The two files of one upload, saved before its row; deleted again if the row is not saved."""

    display: str
    original: str

    def delete(self) -> None:
        _storage("file").delete(self.display)
        _storage("original").delete(self.original)


def _storage(field: str) -> Storage:
    return UltrasoundImage._meta.get_field(field).storage  # the field's storage: S3 or another later


def _image_files_store(*, clinic_id: int, data: bytes, facts: ImageFacts) -> _StoredFiles:
    """Save the display rendition (PNG) and the uploaded bytes unchanged, under one server-made name."""
    month, name = f"{timezone.now():%Y/%m}", uuid.uuid4().hex
    display = _storage("file").save(f"images/clinic-{clinic_id}/{month}/{name}.png", ContentFile(facts.derived_png))
    try:
        original = _storage("original").save(
            f"originals/clinic-{clinic_id}/{month}/{name}.{facts.extension}", ContentFile(data)
        )
    except BaseException:
        _storage("file").delete(display)
        raise
    return _StoredFiles(display=display, original=original)


def image_upload_many(
    *, study: Study, files: list[tuple[bytes, str | bytes | None]], uploaded_by
) -> list[UploadResult]:
    """Upload several images at once; every file is checked first, so one bad file stores nothing.

    Each file is decoded once: the facts from the check are the ones stored.
    """
    if len(files) <= 1:
        return [image_upload(study=study, data=data, filename=name, uploaded_by=uploaded_by) for data, name in files]
    inspected, errors = [], {}
    for index, (data, _) in enumerate(files):
        try:
            inspected.append(inspect_image_bytes(data))
        except ValidationError as error:
            errors[f"file[{index}]"] = error.error_dict["file"]
    if errors:
        raise ValidationError(errors)
    return [
        _image_upload(study=study, data=data, facts=facts, filename=name, uploaded_by=uploaded_by)
        for (data, name), facts in zip(files, inspected, strict=True)
    ]
