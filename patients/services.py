"""Writes of patients, studies and images. Every write goes through here."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import date

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
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
    patient.full_clean()
    patient.save()
    return patient


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
    patient.full_clean()
    patient.save(update_fields=[*changes, "updated_at"])
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

    clinic_id = study.patient.clinic_id
    now = timezone.now()
    path = f"images/clinic-{clinic_id}/{now:%Y/%m}/{uuid.uuid4().hex}.png"
    stored_path = default_storage.save(path, ContentFile(facts.derived_png))
    try:
        with transaction.atomic():
            image = UltrasoundImage(
                study=study,
                file=stored_path,
                original_filename=sanitize_filename(filename),
                sha256=facts.sha256,
                format=facts.format,
                width=facts.width,
                height=facts.height,
                byte_size=facts.byte_size,
                uploaded_by=uploaded_by,
            )
            image.full_clean(validate_constraints=False)
            image.save()
            classification_job_create(image=image)
    except IntegrityError:
        # A concurrent upload of the same bytes won the race: keep its record.
        default_storage.delete(stored_path)
        existing = UltrasoundImage.objects.filter(study=study, sha256=facts.sha256).first()
        if existing is None:
            raise
        return UploadResult(image=existing, created=False)
    except BaseException:
        default_storage.delete(stored_path)
        raise
    return UploadResult(image=image, created=True)


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
