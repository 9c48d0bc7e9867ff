"""Writes of patients, studies and images. Every write goes through here."""

from __future__ import annotations

import functools
import logging
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import ParamSpec, TypeVar

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import Storage
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone
from pydicom.uid import generate_uid

from biometry.services import measurement_recalibrate
from classifier.ml.frames import sniff_video
from classifier.services import StudySignedOff
from fetalsite.accounts.models import Clinic
from fetalsite.accounts.roles import require_permission, user_can_review, user_is_integrator
from fetalsite.core.errors import ApplicationError
from fetalsite.core.text import fold_for_search
from fetalsite.metrics.services import refusal_reason, upload_refusal_record
from patients.cine_files import VIDEO_EXTENSIONS, CineFacts, CineRefused, inspect_cine_bytes, inspect_dicom_file
from patients.dicom_files import DICOM_EXTENSION, DicomFacts, DicomHeader, DicomRefused, is_part10
from patients.imaging import THUMBNAIL_MAX_SIDE, ImageFacts, inspect_image_bytes, sanitize_filename, thumbnail_png
from patients.models import DicomInstance, Patient, Study, UltrasoundImage
from patients.selectors import study_plane_summary

logger = logging.getLogger(__name__)


def require_study_open(study: Study) -> None:
    """Every write to a study or its images calls this first: a signed-off study is read-only until a clinician
    reopens it. Re-read here, so a sign-off committed since the study was loaded counts."""
    study.refresh_from_db(fields=["status"])
    if study.status != Study.Status.OPEN:
        raise StudySignedOff("This study is signed off and read-only; a clinician can reopen it.")


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
    _fold_search_text(patient)
    _save_with_unique_mrn(patient)
    return patient


def _fold_search_text(patient: Patient) -> None:
    """The folded names and MRN that search matches (patients.selectors.patient_search): kept here, where a
    patient's names and MRN are saved, so "zoe" finds "Zoë" on any database."""
    patient.search_text = fold_for_search(f"{patient.given_name} {patient.family_name} {patient.mrn}")


def _refuse_taken_mrn(patient: Patient) -> None:
    """Raise MrnExists when another patient of the clinic has ``patient``'s MRN in any case: "n-2024-0815" is
    the record "N-2024-0815" (the table's constraint on Lower(mrn) says the same)."""
    others = Patient.objects.filter(clinic_id=patient.clinic_id, mrn__iexact=patient.mrn).exclude(id=patient.id)
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
    existing = Patient.objects.filter(clinic_id=_require_clinic(created_by), mrn__iexact=mrn.strip()).first()
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
    _fold_search_text(patient)
    patient._history_user = updated_by
    _save_with_unique_mrn(patient, update_fields=[*changes, "search_text", "updated_at"])
    return patient


def _validate_study_dates(exam_date: date, patient: Patient) -> None:
    if exam_date > timezone.localdate():
        raise ValidationError({"exam_date": "The exam date cannot be in the future."})
    if patient.birth_date and exam_date < patient.birth_date:
        raise ValidationError({"exam_date": "The exam date is before the patient's date of birth."})


# A gestational age an ultrasound can record: a gestational sac is first seen at about 4½ weeks, so 4w0d is the
# earliest dating (and 0w0d, a typo, is refused); pregnancies run to 42 weeks at most, and 44w6d leaves room for a
# dating that was off, while anything later is a typo. Days are the days past the whole weeks: 0 to 6.
GA_MIN_WEEKS, GA_MAX_WEEKS = 4, 44
GA_RANGE = f"Gestational age must be between {GA_MIN_WEEKS}w0d and {GA_MAX_WEEKS}w6d."


def _validate_gestational_age(study: Study) -> None:
    """Both or neither: weeks without days are whole weeks ("20 weeks" is 20w0d: days are set to 0, so a stored
    age always has both); days without weeks are refused (they say nothing)."""
    weeks, days = study.gestational_age_weeks, study.gestational_age_days
    if weeks is None:
        if days is not None:
            raise ValidationError({"gestational_age_weeks": "Give the weeks along with the days."})
        return
    errors = {}
    if not GA_MIN_WEEKS <= weeks <= GA_MAX_WEEKS:
        errors["gestational_age_weeks"] = GA_RANGE
    if days is not None and not 0 <= days <= 6:
        errors["gestational_age_days"] = "Days must be between 0 and 6 (7 days are another week)."
    if errors:
        raise ValidationError(errors)
    if days is None:
        study.gestational_age_days = 0


ACCESSION_NUMBER_MAX = 16  # DICOM SH: what a modality can hold and stamp on its images
ACCESSION_TAKEN = "Another study of your clinic has this accession number."


def _dicom_text_error(value: str, *, max_length: int) -> str | None:
    """Why ``value`` cannot go into a DICOM SH/LO element (None when it can): the machine gets it verbatim."""
    if len(value) > max_length:
        return f"At most {max_length} characters (DICOM allows no more)."
    if any(c == "\\" or ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return "No backslash or control characters (DICOM uses the backslash to separate values)."
    return None


def _validate_schedule(study: Study, *, changed: set[str], check_accession_taken: bool) -> None:
    """The worklist fields: a valid accession number, unique in the clinic when given (so a machine's images come
    back to one study); a scheduled date not in the past when it is set or moved (a clinic books exams ahead);
    and a Study Instance UID generated once a study is scheduled, so the worklist hands the machine the UID its
    images must carry to land in this study."""
    errors: dict[str, str] = {}
    study.accession_number = study.accession_number.strip()
    study.requested_procedure = study.requested_procedure.strip()
    for field, limit in (("accession_number", ACCESSION_NUMBER_MAX), ("requested_procedure", 64)):
        error = _dicom_text_error(getattr(study, field), max_length=limit) if field in changed else None
        if error:
            errors[field] = error
    if "scheduled_date" in changed and study.scheduled_date and study.scheduled_date < timezone.localdate():
        errors["scheduled_date"] = "The scheduled date cannot be in the past."
    if errors:
        raise ValidationError(errors)
    if check_accession_taken and study.accession_number and "accession_number" in changed:
        clinic_id = study.patient.clinic_id
        Clinic.objects.select_for_update().get(id=clinic_id)  # two schedulings of one number: the second waits
        taken = Study.objects.filter(patient__clinic_id=clinic_id, accession_number=study.accession_number)
        if taken.exclude(id=study.id).exists():
            raise ValidationError({"accession_number": ACCESSION_TAKEN})
    if study.scheduled_date and not study.study_instance_uid:
        study.study_instance_uid = generate_uid()


@transaction.atomic
def study_create(
    *,
    patient: Patient,
    exam_date: date,
    created_by,
    gestational_age_weeks: int | None = None,
    gestational_age_days: int | None = None,
    notes: str = "",
    study_instance_uid: str | None = None,
    accession_number: str = "",
    scheduled_date: date | None = None,
    requested_procedure: str = "",
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
        study_instance_uid=study_instance_uid,
        accession_number=accession_number,
        scheduled_date=scheduled_date,
        requested_procedure=requested_procedure,
        created_by=created_by,
    )
    _validate_gestational_age(study)
    # A study opened for a received file (it comes with its UID) keeps the file's accession number as sent: a
    # machine that made its own Study Instance UID for a worklist item still has its images stored.
    _validate_schedule(
        study,
        changed={"accession_number", "scheduled_date", "requested_procedure"},
        check_accession_taken=study_instance_uid is None,
    )
    study.full_clean()
    study.save()
    return study


STUDY_EDITABLE_FIELDS = (
    "exam_date",
    "gestational_age_weeks",
    "gestational_age_days",
    "notes",
    "accession_number",
    "scheduled_date",
    "requested_procedure",
)


@transaction.atomic
def study_update(*, study: Study, updated_by, **changes) -> Study:
    unknown = set(changes) - set(STUDY_EDITABLE_FIELDS)
    if unknown:
        raise ValidationError({field: "This field cannot be changed." for field in unknown})
    require_permission(updated_by, "patients.change_study", clinic_id=study.patient.clinic_id, action="edit studies")
    require_study_open(study)
    had_uid = study.study_instance_uid
    for field, value in changes.items():
        setattr(study, field, value)
    _validate_study_dates(study.exam_date, study.patient)
    if {"gestational_age_weeks", "gestational_age_days"} & set(changes):  # an older age stays as it was
        _validate_gestational_age(study)
    _validate_schedule(study, changed=set(changes), check_accession_taken=True)
    study._history_user = updated_by
    study.full_clean()
    extra = ["study_instance_uid"] if study.study_instance_uid != had_uid else []
    if "gestational_age_weeks" in changes and "gestational_age_days" not in changes:
        extra.append("gestational_age_days")  # whole weeks: days set to 0 by _validate_gestational_age
    study.save(update_fields=[*changes, *extra, "updated_at"])
    return study


class StudyHasOpenItems(ApplicationError):
    """Sign-off asked for while images await review or classification, or planes are missing, without the
    clinician saying they have seen them: ``extra`` lists them (``unreviewed``, ``pending``: image ids;
    ``missing``: plane labels)."""

    http_status = 409
    code = "study_has_open_items"


# The history keeps the reason as its change reason, a column of 100 characters (simple_history's).
REOPEN_REASON_MAX = 100


class StudyNotSigned(ApplicationError):
    http_status = 409
    code = "study_not_signed"


def _require_clinician(user, study: Study, *, action: str) -> None:
    """Signing a study off and reopening it are a clinician's acts: the review right, in the study's clinic."""
    if not user_can_review(user):
        raise PermissionDenied(f"Only clinicians can {action}.")
    require_permission(user, "patients.change_study", clinic_id=study.patient.clinic_id, action=action)


def study_open_items(*, study: Study) -> dict[str, list]:
    """What is still open in a study before sign-off, as StudyHasOpenItems' ``extra`` names it: empty lists
    when nothing is."""
    summary = study_plane_summary(study=study)
    return {
        "unreviewed": [image.id for image in summary.unreviewed],
        "pending": [image.id for image in summary.pending],
        "missing": list(summary.missing),
    }


@transaction.atomic
def study_sign_off(*, study: Study, signed_by, acknowledged: bool = False) -> Study:
    """A clinician signs the study off: it becomes read-only (every write service refuses it with
    StudySignedOff) until a clinician reopens it. With images unreviewed or pending, or planes missing, the
    clinician must acknowledge them (``acknowledged``), else StudyHasOpenItems lists them and nothing changes;
    the history record says what was acknowledged. Signing a signed study changes nothing."""
    _require_clinician(signed_by, study, action="sign studies off")
    # Locked: a review or an upload that checked the study was open commits before this reads what is open.
    study = Study.objects.select_for_update().select_related("patient").get(id=study.id)
    if study.status == Study.Status.COMPLETED:
        return study
    open_items = study_open_items(study=study)
    counts = {kind: len(items) for kind, items in open_items.items() if items}
    if counts and not acknowledged:
        raise StudyHasOpenItems(
            "This study has images awaiting review or classification, or planes missing: "
            "acknowledge them to sign it off.",
            extra=open_items,
        )
    study.status = Study.Status.COMPLETED
    study.signed_by = signed_by
    study.signed_at = timezone.now()
    study._history_user = signed_by
    study._change_reason = "Signed off" + (
        " with open items acknowledged: " + ", ".join(f"{count} {kind}" for kind, count in counts.items())
        if counts
        else ""
    )
    study.full_clean()
    study.save(update_fields=["status", "signed_by", "signed_at", "updated_at"])
    return study


@transaction.atomic
def study_reopen(*, study: Study, reopened_by, reason: str) -> Study:
    """A clinician reopens a signed-off study, saying why; the reason is the history record's change reason."""
    _require_clinician(reopened_by, study, action="reopen studies")
    reason = reason.strip()
    if not reason:
        raise ValidationError({"reason": "Say why the study is reopened."})
    if len(reason) > REOPEN_REASON_MAX:
        raise ValidationError({"reason": f"At most {REOPEN_REASON_MAX} characters."})
    study = Study.objects.select_for_update().select_related("patient").get(id=study.id)
    if study.status != Study.Status.COMPLETED:
        raise StudyNotSigned("This study is open; only a signed-off study can be reopened.")
    study.status = Study.Status.OPEN
    study.signed_by = None
    study.signed_at = None
    study._history_user = reopened_by
    study._change_reason = reason
    study.full_clean()
    study.save(update_fields=["status", "signed_by", "signed_at", "updated_at"])
    return study


@dataclass(frozen=True)
class UploadResult:
    image: UltrasoundImage
    created: bool


P = ParamSpec("P")
R = TypeVar("R")


def _refusals_counted(service: Callable[P, R]) -> Callable[P, R]:
    """Count each refused upload by its code (/metrics' fetalsite_upload_refusals_total) where the API, the pages,
    C-STORE and STOW-RS all pass: the services they call. The error itself goes on unchanged."""

    @functools.wraps(service)
    def counted(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return service(*args, **kwargs)
        except (ValidationError, ApplicationError, PermissionDenied) as refused:
            try:  # after the service's own transaction ended: the count is not rolled back with it
                upload_refusal_record(reason=refusal_reason(refused))
            except DatabaseError:  # e.g. the caller's transaction is broken: the answer matters more than a count
                logger.warning("Upload refused (%s) but not counted", refusal_reason(refused), exc_info=True)
            raise

    return counted


@_refusals_counted
def image_upload(
    *, study: Study, data: bytes, filename: str | bytes | None, uploaded_by, pixel_size_mm: float | None = None
) -> UploadResult:
    """Validate, store and queue one image; the same bytes again return the existing record (unchanged: its
    pixel size too, which image_calibrate changes).

    A DICOM file is accepted when its patient is the study's (and its study, once the study has a UID).
    ``pixel_size_mm``: one pixel of the uploaded file in mm, when the uploader knows it (_upload_calibration)."""
    return _image_upload(
        study=study, data=data, facts=None, filename=filename, uploaded_by=uploaded_by, pixel_size_mm=pixel_size_mm
    )


def inspect_upload(data: bytes, filename: str | bytes | None) -> ImageFacts:
    """The facts of an uploaded file: a DICOM Part 10 file (by its DICM marker), a video (MP4/MOV/AVI by its
    magic bytes) or an image (by its content). A multi-frame DICOM file or a video is a cine loop (CineFacts).

    A file named .dcm that is neither is refused as not DICOM, the sender's own word for it."""
    if is_part10(data):
        return inspect_dicom_file(data)
    if sniff_video(data) is not None:
        return inspect_cine_bytes(data)
    try:
        return inspect_image_bytes(data)
    except ValidationError as error:
        name = filename.decode("utf-8", "replace") if isinstance(filename, bytes) else filename or ""
        codes = {e.code for e in error.error_dict.get("file", [])}
        if name.lower().endswith(f".{DICOM_EXTENSION}") and "not_an_image" in codes:
            raise DicomRefused("The file is named .dcm but is not a DICOM Part 10 file.", code="not_dicom") from None
        extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        if extension in VIDEO_EXTENSIONS.values() and "not_an_image" in codes:
            raise CineRefused(
                f"The file is named .{extension} but is not an MP4, MOV or AVI video.", code="video_unsupported"
            ) from None
        raise


def _image_upload(
    *,
    study: Study,
    data: bytes,
    facts: ImageFacts | None,
    filename: str | bytes | None,
    uploaded_by,
    source: str = "upload",
    pixel_size_mm: float | None = None,
) -> UploadResult:
    """image_upload, given the facts when the caller has inspected ``data`` already: decoding is the costly part."""
    require_permission(
        uploaded_by, "patients.add_ultrasoundimage", clinic_id=study.patient.clinic_id, action="upload images"
    )
    require_study_open(study)
    _validate_given_pixel_size(pixel_size_mm)
    facts = facts or inspect_upload(data, filename)
    calibration = _upload_calibration(facts=facts, given=pixel_size_mm)
    header = facts.dicom if isinstance(facts, DicomFacts) else None
    if header is None:
        return _image_store(
            study=study, data=data, facts=facts, filename=filename, uploaded_by=uploaded_by, calibration=calibration
        )
    with transaction.atomic():
        # Serialises the clinic's DICOM writes: a Study Instance UID and a SOP Instance UID stay unique in it.
        Clinic.objects.select_for_update().get(id=study.patient.clinic_id)
        _dicom_match_study(study=study, header=header, updated_by=uploaded_by)
        known = DicomInstance.objects.filter(
            clinic_id=study.patient.clinic_id, sop_instance_uid=header.sop_instance_uid
        )
        existing = known.select_related("image").first()
        if existing is not None:
            return UploadResult(image=existing.image, created=False)
        return _image_store(
            study=study,
            data=data,
            facts=facts,
            filename=filename,
            uploaded_by=uploaded_by,
            source=source,
            calibration=calibration,
        )


def _image_store(
    *,
    study: Study,
    data: bytes,
    facts: ImageFacts,
    filename: str | bytes | None,
    uploaded_by,
    source: str = "upload",
    calibration: tuple[float | None, str] = (None, ""),
) -> UploadResult:
    """Save the files, then the row (and a DICOM file's facts) and its job; the files go again if the row does not.

    A cine loop is one row of kind cine with its frame count and rate and its playback MP4 (CineFacts)."""
    from classifier.services import classification_job_create

    existing = UltrasoundImage.objects.filter(study=study, sha256=facts.sha256).first()
    if existing:
        return UploadResult(image=existing, created=False)

    stored = _image_files_store(clinic_id=study.patient.clinic_id, data=data, facts=facts)
    try:
        with transaction.atomic():
            image = _image_row(
                study=study, stored=stored, facts=facts, filename=sanitize_filename(filename), uploaded_by=uploaded_by
            )
            if isinstance(facts, CineFacts):
                image.kind, image.playback = UltrasoundImage.Kind.CINE, stored.playback
                image.frame_count, image.frame_rate = facts.frame_count, facts.frame_rate
            image.pixel_size_mm, image.pixel_size_source = calibration
            image.full_clean(validate_constraints=False)
            image._change_reason = source  # the history says how it came (an upload, a DICOM peer)
            image.save()
            if isinstance(facts, DicomFacts) and facts.dicom is not None:
                _dicom_instance_create(image=image, header=facts.dicom, source=source)
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


def _image_row(*, study: Study, stored: _StoredFiles, facts: ImageFacts, filename: str, uploaded_by) -> UltrasoundImage:
    """The unsaved row of one stored file: an upload's, or a key frame's (the one place its facts become fields)."""
    return UltrasoundImage(
        study=study,
        file=stored.display,
        original=stored.original,
        original_filename=filename,
        sha256=facts.sha256,
        format=facts.format,
        width=facts.width,
        height=facts.height,
        byte_size=facts.byte_size,
        original_width=facts.original_width,
        original_height=facts.original_height,
        uploaded_by=uploaded_by,
    )


@dataclass(frozen=True)
class _StoredFiles:
    """The files of one upload (and a clip's playback video), saved before its row; deleted again if the row is
    not saved."""

    display: str
    original: str
    playback: str = ""

    def delete(self) -> None:
        _storage("file").delete(self.display)
        if self.original:  # empty when saving the original itself failed
            _storage("original").delete(self.original)
        if self.playback:
            _storage("playback").delete(self.playback)


def _storage(field: str) -> Storage:
    return UltrasoundImage._meta.get_field(field).storage  # the field's storage: S3 or another later


def image_thumbnail(*, image: UltrasoundImage, user) -> str:
    """The stored name of the study page card's picture of ``image``: its display PNG when that is small enough,
    else a thumbnail of it, made on the first request and stored beside it (``thumbs/``), so later views neither
    decode nor encode anything."""
    require_permission(
        user, "patients.view_ultrasoundimage", clinic_id=image.study.patient.clinic_id, action="view images"
    )
    display = image.file.name
    if display.endswith(".png") and max(image.width, image.height) <= THUMBNAIL_MAX_SIDE:
        return display
    name = "thumbs/" + display.split("/", 1)[-1].rsplit(".", 1)[0] + ".png"
    storage = _storage("file")
    if storage.exists(name):
        return name
    with image.file.open("rb") as handle:
        png = thumbnail_png(handle.read())
    saved = storage.save(name, ContentFile(png))
    if saved != name:  # a concurrent first view stored the same thumbnail meanwhile: keep that one
        storage.delete(saved)
    return name


def _image_files_store(*, clinic_id: int, data: bytes, facts: ImageFacts) -> _StoredFiles:
    """Save the display rendition (PNG), the uploaded bytes unchanged and a clip's playback MP4, under one
    server-made name."""
    month, name = f"{timezone.now():%Y/%m}", uuid.uuid4().hex
    display = _storage("file").save(f"images/clinic-{clinic_id}/{month}/{name}.png", ContentFile(facts.derived_png))
    stored = _StoredFiles(display=display, original="")
    try:
        original = _storage("original").save(
            f"originals/clinic-{clinic_id}/{month}/{name}.{facts.extension}", ContentFile(data)
        )
        stored = _StoredFiles(display=display, original=original)
        if isinstance(facts, CineFacts):
            playback = _storage("playback").save(
                f"playback/clinic-{clinic_id}/{month}/{name}.mp4", ContentFile(facts.playback_mp4)
            )
            stored = _StoredFiles(display=display, original=original, playback=playback)
    except BaseException:
        stored.delete()
        raise
    return stored


@_refusals_counted
def image_upload_many(
    *,
    study: Study,
    files: list[tuple[bytes, str | bytes | None]],
    uploaded_by,
    pixel_size_mm: float | None = None,
) -> list[UploadResult]:
    """Upload several images at once; every file is checked first, so one bad file stores nothing.

    Each file is decoded once: the facts from the check are the ones stored. ``pixel_size_mm`` is every file's.
    """
    if len(files) <= 1:
        return [
            _image_upload(
                study=study, data=data, facts=None, filename=name, uploaded_by=uploaded_by, pixel_size_mm=pixel_size_mm
            )
            for data, name in files
        ]
    _validate_given_pixel_size(pixel_size_mm)
    inspected, errors = [], {}
    for index, (data, name) in enumerate(files):
        try:
            inspected.append(inspect_upload(data, name))
            _upload_calibration(facts=inspected[-1], given=pixel_size_mm)
        except ValidationError as error:
            errors.update(_batch_errors(error, index=index))
        except DicomRefused as refused:  # one of several files: named by its part, its code kept
            errors[f"file[{index}]"] = [ValidationError(refused.message, code=refused.code)]
    if errors:
        raise ValidationError(errors)
    _dicom_batch_check(study=study, facts=inspected)
    return [
        _image_upload(
            study=study, data=data, facts=facts, filename=name, uploaded_by=uploaded_by, pixel_size_mm=pixel_size_mm
        )
        for (data, name), facts in zip(files, inspected, strict=True)
    ]


def _batch_errors(error: ValidationError, *, index: int) -> dict[str, list]:
    """One file's refusal in a batch: the file's own errors as ``file[i]``, a pixel size its file disagrees with
    as ``pixel_size_mm`` (the field the client sent)."""
    return {(f"file[{index}]" if field == "file" else field): messages for field, messages in error.error_dict.items()}


# ---- DICOM files: the study they belong to, their facts, and instances received over the network ----------


class DicomPatientMismatch(ApplicationError):
    http_status = 409
    code = "dicom_patient_mismatch"


class DicomStudyMismatch(ApplicationError):
    http_status = 409
    code = "dicom_study_mismatch"


def _dicom_refusal(*, study: Study, header: DicomHeader, batch_uid: str | None = None) -> ApplicationError | None:
    """Why this file may not go into ``study`` (read only; None when it may)."""
    if header.patient_id != study.patient.mrn:
        message = (
            f"The DICOM file is of Patient ID {header.patient_id or '(none)'}, not this study's patient "
            f"(MRN {study.patient.mrn}); nothing was stored."
        )
        return DicomPatientMismatch(message, fields={"file": [message]})
    uid = header.study_instance_uid
    other = (
        Study.objects.filter(patient__clinic_id=study.patient.clinic_id, study_instance_uid=uid)
        .exclude(id=study.id)
        .values_list("id", flat=True)
        .first()
    )
    expected = study.study_instance_uid or batch_uid
    if (expected and uid != expected) or other is not None:
        where = f"study #{other}" if other is not None else "another study"
        message = (
            f"The DICOM file belongs to Study Instance UID {uid} ({where}), not this study "
            f"({expected or 'no UID yet'}); nothing was stored."
        )
        return DicomStudyMismatch(message, fields={"file": [message]}, extra={"existing_id": other} if other else None)
    return None


def _dicom_match_study(*, study: Study, header: DicomHeader, updated_by) -> None:
    """Refuse a file of another patient or study; a study without a UID takes the file's (under the clinic lock)."""
    study.refresh_from_db(fields=["study_instance_uid", "accession_number"])
    refusal = _dicom_refusal(study=study, header=header)
    if refusal is not None:
        raise refusal
    if not study.study_instance_uid:
        study.study_instance_uid = header.study_instance_uid
        study.accession_number = study.accession_number or header.accession_number
        study._history_user = updated_by
        study.save(update_fields=["study_instance_uid", "accession_number", "updated_at"])


def _dicom_batch_check(*, study: Study, facts: list[ImageFacts]) -> None:
    """Before a multi-file upload stores anything: every DICOM file is of this study's patient and one study."""
    headers = [f.dicom for f in facts if isinstance(f, DicomFacts) and f.dicom is not None]
    batch_uid = headers[0].study_instance_uid if headers else None
    for header in headers:
        refusal = _dicom_refusal(study=study, header=header, batch_uid=batch_uid)
        if refusal is not None:
            raise refusal


def _dicom_instance_create(*, image: UltrasoundImage, header: DicomHeader, source: str) -> DicomInstance:
    instance = DicomInstance(
        image=image,
        clinic_id=image.study.patient.clinic_id,
        sop_instance_uid=header.sop_instance_uid,
        sop_class_uid=header.sop_class_uid,
        series_instance_uid=header.series_instance_uid,
        study_instance_uid=header.study_instance_uid,
        transfer_syntax_uid=header.transfer_syntax_uid,
        manufacturer=header.manufacturer,
        model_name=header.model_name,
        number_of_frames=header.number_of_frames,
        frame_time_ms=header.frame_time_ms,
        pixel_spacing_x_mm=header.pixel_spacing_x_mm,
        pixel_spacing_y_mm=header.pixel_spacing_y_mm,
        source=source[:200],
    )
    instance.full_clean(validate_constraints=False)  # the clinic lock makes a duplicate impossible here
    instance.save()
    return instance


@_refusals_counted
def dicom_instance_receive(*, clinic: Clinic, data: bytes, received_by, source: str) -> UploadResult:
    """Store one DICOM instance received over the network (C-STORE, later STOW-RS) in ``clinic``.

    Patient ID is the MRN: a new one registers the patient; a registered one whose name or birth date differs
    is refused (PatientDetailsDiffer, logged), never merged. The Study Instance UID finds the clinic's study,
    opened (exam date from Study Date, else today; accession number kept) when there is none. Then the upload's
    storing path: the original kept, a display PNG, classification queued once this commits. The same SOP
    Instance UID again returns its image (created=False). Refusals are ApplicationErrors with a ``code``."""
    # Before anything is looked up: even "already stored" is an answer only a sender of this clinic may get.
    require_permission(received_by, "patients.add_ultrasoundimage", clinic_id=clinic.id, action="receive images")
    facts = inspect_dicom_file(data)  # a still or, of several frames, a cine loop
    header = facts.dicom
    with transaction.atomic():
        Clinic.objects.select_for_update().get(id=clinic.id)
        known = DicomInstance.objects.filter(clinic=clinic, sop_instance_uid=header.sop_instance_uid)
        existing = known.select_related("image").first()
        if existing is not None:
            return UploadResult(image=existing.image, created=False)
        patient = _dicom_patient(header=header, received_by=received_by, source=source)
        study = _dicom_study(patient=patient, header=header, received_by=received_by)
        return _image_upload(
            study=study,
            data=data,
            facts=facts,
            filename=f"{header.sop_instance_uid}.{DICOM_EXTENSION}",
            uploaded_by=received_by,
            source=source,
        )


def _dicom_patient(*, header: DicomHeader, received_by, source: str) -> Patient:
    if not (header.patient_id and header.patient_family_name and header.patient_given_name):
        raise DicomRefused(
            "The DICOM header lacks the Patient ID or a Patient's Name with family and given names.",
            code="dicom_patient_incomplete",
        )
    existing = Patient.objects.filter(clinic_id=received_by.clinic_id, mrn__iexact=header.patient_id).first()
    # A header without a birth date says nothing against the registered one.
    birth_date = header.patient_birth_date or (existing.birth_date if existing else None)
    try:
        patient, _ = patient_get_or_create(
            created_by=received_by,
            mrn=header.patient_id,
            given_name=header.patient_given_name,
            family_name=header.patient_family_name,
            birth_date=birth_date,
        )
    except PatientDetailsDiffer as differ:
        logger.warning(
            "DICOM from %s refused: MRN %s is patient %s, registered with other %s",
            source,
            header.patient_id,
            differ.extra.get("existing_id"),
            ", ".join(sorted(differ.fields or {})),
        )
        raise
    return patient


def _dicom_study(*, patient: Patient, header: DicomHeader, received_by) -> Study:
    study = Study.objects.filter(
        patient__clinic_id=patient.clinic_id, study_instance_uid=header.study_instance_uid
    ).first()
    if study is None:
        return study_create(
            patient=patient,
            exam_date=header.study_date or timezone.localdate(),
            created_by=received_by,
            study_instance_uid=header.study_instance_uid,
            accession_number=header.accession_number,
        )
    if study.patient_id != patient.id:
        message = (
            f"Study Instance UID {header.study_instance_uid} is a study of another patient than Patient ID "
            f"{header.patient_id}; nothing was stored."
        )
        raise DicomStudyMismatch(message, fields={"file": [message]})
    return study


# ---- Key frames of a cine loop: stills made by the classifier's worker --------------------------------------


@transaction.atomic
def cine_key_frames_store(*, clip: UltrasoundImage, key_frames: list) -> list[UltrasoundImage]:
    """Store each key frame (classifier.ml.keyframes.KeyFrame) of ``clip`` as a still of the clip's study, with
    its own classification job, so it is classified and reviewed like any image; the stills in that order.

    Called (patients/receivers.py) inside the transaction in which the clip's job saves its CineFrames. Nobody
    acts here: the clip's upload was the checked action and the stills are derived from it, so there is no
    permission check and they are "uploaded by" the clip's uploader (a study completed since still gets them).
    Idempotent: a frame the clip already has a still for is that still (unique (clip, frame index))."""
    # One clip's key frames are stored one job at a time: two jobs (two models) cannot race on a frame.
    clip = UltrasoundImage.objects.select_for_update().select_related("study__patient").get(id=clip.id)
    return [_key_frame_store(clip=clip, key_frame=key_frame) for key_frame in key_frames]


def _key_frame_store(*, clip: UltrasoundImage, key_frame) -> UltrasoundImage:
    from classifier.services import classification_job_create

    existing = UltrasoundImage.objects.filter(clip=clip, clip_frame_index=key_frame.frame_index).first()
    if existing is not None:
        return existing
    facts = inspect_image_bytes(key_frame.png)  # the PNG checked as an upload is: the same facts, same display
    # These exact bytes already in the study (the same frame of an identical clip sent twice, or this key frame
    # downloaded and uploaded back before the clip was analysed again): that still is the picture, already
    # classified and reviewable. It is not made this clip's (it has its own origin and history), nor copied
    # (image_bytes_unique_per_study), so the clip's timeline shows this key frame without a still of its own.
    same_bytes = UltrasoundImage.objects.filter(study=clip.study, sha256=facts.sha256).first()
    if same_bytes is not None:
        return same_bytes
    stored = _image_files_store(clinic_id=clip.study.patient.clinic_id, data=key_frame.png, facts=facts)
    try:
        image = _image_row(
            study=clip.study,
            stored=stored,
            facts=facts,
            filename=_key_frame_filename(clip, key_frame.frame_index),
            uploaded_by=clip.uploaded_by,
        )
        image.clip, image.clip_frame_index = clip, key_frame.frame_index
        image.pixel_size_mm, image.pixel_size_source = _key_frame_calibration(clip=clip, facts=facts)
        image.full_clean(validate_constraints=False)
        image._change_reason = f"key frame of image #{clip.id}"
        image.save()
        classification_job_create(image=image)
    except BaseException:
        stored.delete()
        raise
    return image


def _key_frame_filename(clip: UltrasoundImage, frame_index: int) -> str:
    """The clip's name with the frame's number, e.g. sweep-frame-12.png, for display."""
    stem = (clip.original_filename or f"image-{clip.id}").rsplit(".", 1)[0]
    return sanitize_filename(f"{stem}-frame-{frame_index}.png")


# ---- Excluding an image ---------------------------------------------------------------------------------
# A wrong upload (another patient's image, a test image) stays in the record with its prediction, history and
# audit trail, but leaves the plane summary and the report. A clinician's act, like a review.

# The comment is the history record's change reason, a column of 100 characters (simple_history's).
EXCLUDE_COMMENT_MAX = 100


def _require_image_reviewer(user, image: UltrasoundImage, *, action: str) -> None:
    if not user_can_review(user):
        raise PermissionDenied(f"Only clinicians can {action}.")
    require_permission(user, "classifier.review_prediction", clinic_id=image.study.patient.clinic_id, action=action)


def _images_with_their_key_frames(image: UltrasoundImage) -> list[UltrasoundImage]:
    """The image, locked, and for a clip its key-frame stills: frames of a wrong clip are as wrong as the clip."""
    locked = UltrasoundImage.objects.select_for_update().select_related("study__patient")
    image = locked.get(id=image.id)
    key_frames = list(locked.filter(clip=image).order_by("id")) if image.is_cine else []
    return [image, *key_frames]


@transaction.atomic
def image_exclude(*, image: UltrasoundImage, excluded_by, reason: str, comment: str = "") -> UltrasoundImage:
    """A clinician excludes an image (and a clip's key frames) from the study's summary and report, saying why;
    the comment, else the reason, is the history record's change reason."""
    _require_image_reviewer(excluded_by, image, action="exclude images")
    require_study_open(image.study)
    if reason not in UltrasoundImage.ExclusionReason.values:
        raise ValidationError({"reason": f"Choose one of: {', '.join(UltrasoundImage.ExclusionReason.values)}."})
    comment = comment.strip()
    if len(comment) > EXCLUDE_COMMENT_MAX:
        raise ValidationError({"comment": f"At most {EXCLUDE_COMMENT_MAX} characters."})
    now = timezone.now()
    images = _images_with_their_key_frames(image)
    for each in images:
        if each.excluded_reason == reason:
            continue  # already excluded for this reason: nothing to record
        each.excluded_reason, each.excluded_by, each.excluded_at = reason, excluded_by, now
        each._history_user = excluded_by
        each._change_reason = comment or f"Excluded: {UltrasoundImage.ExclusionReason(reason).label}"
        each.full_clean()
        each.save(update_fields=["excluded_reason", "excluded_by", "excluded_at"])
    return images[0]


@transaction.atomic
def image_include(*, image: UltrasoundImage, included_by) -> UltrasoundImage:
    """A clinician takes an exclusion back (a clip's key frames too); the history keeps both."""
    _require_image_reviewer(included_by, image, action="include images again")
    require_study_open(image.study)
    images = _images_with_their_key_frames(image)
    for each in images:
        if not each.is_excluded:
            continue
        each.excluded_reason, each.excluded_by, each.excluded_at = "", None, None
        each._history_user = included_by
        each._change_reason = "Included again"
        each.full_clean()
        each.save(update_fields=["excluded_reason", "excluded_by", "excluded_at"])
    return images[0]


# ---- Pixel size: read from a DICOM file, given with an upload, drawn on the image ------------------------------
# UltrasoundImage.pixel_size_mm is one DISPLAY pixel's size (the rendition pages show, the worker measures and the
# viewer's coordinates count in), never a guess: a file's own calibration, the uploader's word, or a known distance
# a sonographer or clinician drew. docs/biometry.md ("Calibration") says which wins.


def _limits(field: str) -> tuple[float, float]:
    validators = UltrasoundImage._meta.get_field(field).validators
    low = next(v.limit_value for v in validators if isinstance(v, MinValueValidator))
    high = next(v.limit_value for v in validators if isinstance(v, MaxValueValidator))
    return low, high


# The plausible pixel sizes, as the model's validators have them (0.001 to 10 mm): forms and the API use these.
PIXEL_SIZE_MIN_MM, PIXEL_SIZE_MAX_MM = _limits("pixel_size_mm")
PIXEL_SIZE_RANGE = f"A pixel size is a number of millimetres from {PIXEL_SIZE_MIN_MM:g} to {PIXEL_SIZE_MAX_MM:g}."
# A pixel size given with a DICOM file that calibrates itself may differ from the file's by this much (rounding).
UPLOAD_DICOM_AGREEMENT = 0.01
CALIBRATION_MIN_LINE_PX = 1.0  # a drawn line shorter than a pixel measures nothing


def _is_pixel_size(value: float) -> bool:
    return math.isfinite(value) and PIXEL_SIZE_MIN_MM <= value <= PIXEL_SIZE_MAX_MM


def _validate_given_pixel_size(value: float | None) -> None:
    if value is not None and not _is_pixel_size(float(value)):
        raise ValidationError({"pixel_size_mm": PIXEL_SIZE_RANGE})


def _display_scale(*, original: tuple[int | None, int | None], display: tuple[int, int]) -> int:
    """How many of the file's pixels one display pixel spans, each way. The display rendition is the file shrunk by
    an integer box filter once its long side passes 4096 px (classifier.ml.preprocessing.to_bounded_8bit) and
    turned upright (EXIF): the ratio of the long sides, rounded to that integer (the rendition's long side is at
    least 2048 px whenever it is shrunk, so the rounding is exact)."""
    if not all(original):
        return 1
    return max(1, round(max(original) / max(display)))


def _upload_calibration(*, facts: ImageFacts, given: float | None) -> tuple[float | None, str]:
    """A new image's pixel size (a display pixel's, mm) and its source. A DICOM file's own calibration (strict:
    one tissue region, cm both ways, square pixels) is used when it has one; a ``given`` size (one of the uploaded
    file's pixels) that differs from it by more than 1 % is refused, never silently overruled. Without one, the
    given size, else none. ValidationError on ``pixel_size_mm`` when the given size cannot be stored."""
    header = facts.dicom if isinstance(facts, DicomFacts) else None
    from_file = header.pixel_size_mm if header is not None else None
    if from_file is not None and given is not None and abs(given - from_file) > UPLOAD_DICOM_AGREEMENT * from_file:
        raise ValidationError(
            {
                "pixel_size_mm": f"The DICOM file calibrates itself at {from_file:.4g} mm per pixel, which differs "
                f"from the {given:g} mm given: leave the pixel size out to use the file's; nothing was stored."
            }
        )
    size, source = (from_file, "dicom") if from_file is not None else (given, "upload")
    if size is None:
        return None, ""
    size *= _display_scale(original=(facts.original_width, facts.original_height), display=(facts.width, facts.height))
    if not _is_pixel_size(size):
        if source == "dicom":
            return None, ""  # a file's implausible calibration: stored uncalibrated, as without one
        raise ValidationError({"pixel_size_mm": f"{PIXEL_SIZE_RANGE} This image's display pixel would be {size:g}."})
    return size, UltrasoundImage.PixelSizeSource(source).value


def _key_frame_calibration(*, clip: UltrasoundImage, facts: ImageFacts) -> tuple[float | None, str]:
    """A key frame's pixel size: its clip's (whatever its source), per display pixel of the key frame. Both are
    frames of the same file, each shrunk by its own integer factor."""
    if clip.pixel_size_mm is None:
        return None, ""
    per_file_pixel = clip.pixel_size_mm / _display_scale(
        original=(clip.original_width, clip.original_height), display=(clip.width, clip.height)
    )
    scale = _display_scale(original=(facts.original_width, facts.original_height), display=(facts.width, facts.height))
    size = per_file_pixel * scale
    return (size, clip.pixel_size_source) if _is_pixel_size(size) else (None, "")


class CalibrationFromDicom(ApplicationError):
    """The image's pixel size is its DICOM file's own calibration, which a drawn line does not overrule."""

    http_status = 409
    code = "calibration_from_dicom"


def _require_image_editor(user, image: UltrasoundImage, *, action: str) -> None:
    """Calibrating an image is the act of a person at the viewer who may add images to its study (a sonographer
    or a clinician of its clinic): not an integration's machine account (it gives ``pixel_size_mm`` with the
    upload), not a clinic admin (no upload right)."""
    require_permission(user, "patients.add_ultrasoundimage", clinic_id=image.study.patient.clinic_id, action=action)
    if user_is_integrator(user):
        raise PermissionDenied(
            f"Integrations cannot {action}: a sonographer or clinician draws a known distance in the viewer; "
            "an integration gives pixel_size_mm with the upload."
        )


def _point_on(image: UltrasoundImage, point, *, name: str) -> tuple[float, float]:
    """``point`` as (x, y) display pixels on ``image``, else ValidationError on ``name``. Pixel centres sit at
    integer coordinates (docs/biometry.md), so the image spans -0.5 to width - 0.5 across."""
    try:
        x, y = (float(value) for value in point)
    except (TypeError, ValueError):
        x = y = math.nan
    if not (math.isfinite(x) and math.isfinite(y)):
        raise ValidationError({name: "Give the point as two finite numbers, x and y, in display pixels."})
    if not (-0.5 <= x <= image.width - 0.5 and -0.5 <= y <= image.height - 0.5):
        raise ValidationError(
            {name: f"The point ({x:g}, {y:g}) lies outside the image ({image.width}×{image.height} px)."}
        )
    return x, y


def _drawn_pixel_size(*, image: UltrasoundImage, start, end, distance_mm: float) -> tuple[float, float]:
    """(pixel size in mm, the line's length in display pixels) of a line of known length drawn on the image;
    ValidationError naming the field at fault."""
    length = math.dist(_point_on(image, start, name="start"), _point_on(image, end, name="end"))
    if length < CALIBRATION_MIN_LINE_PX:
        raise ValidationError(
            {"end": "The line is shorter than a pixel: draw it from one end of the known distance to the other."}
        )
    if not (math.isfinite(distance_mm) and distance_mm > 0):
        raise ValidationError({"distance_mm": "Give the drawn distance as a positive number of millimetres."})
    size = distance_mm / length
    if not _is_pixel_size(size):
        raise ValidationError(
            {"distance_mm": f"{distance_mm:g} mm over {length:.1f} px is {size:.4g} mm per pixel. {PIXEL_SIZE_RANGE}"}
        )
    return size, length


@transaction.atomic
def image_calibrate(
    *, image: UltrasoundImage, calibrated_by, start: tuple[float, float], end: tuple[float, float], distance_mm: float
) -> UltrasoundImage:
    """A sonographer or clinician drew a line of known length (``distance_mm``) on the image, from ``start`` to
    ``end`` (x, y) in display pixels: the image's pixel size is that distance over the line's length, source
    "drawn". It replaces a size given with the upload or drawn before, never a DICOM file's own calibration
    (CalibrationFromDicom, 409). The change is in the image's history, and the image's measurements take the new
    size (biometry.services.measurement_recalibrate) in the same transaction."""
    _require_image_editor(calibrated_by, image, action="calibrate images")
    require_study_open(image.study)
    image = UltrasoundImage.objects.select_for_update().select_related("study__patient").get(id=image.id)
    if image.pixel_size_source == UltrasoundImage.PixelSizeSource.DICOM:
        raise CalibrationFromDicom(
            "This image's pixel size is its DICOM file's own calibration, which a drawn line does not replace."
        )
    size, length = _drawn_pixel_size(image=image, start=start, end=end, distance_mm=float(distance_mm))
    image.pixel_size_mm, image.pixel_size_source = size, UltrasoundImage.PixelSizeSource.DRAWN
    image._history_user = calibrated_by
    image._change_reason = f"Calibrated: {float(distance_mm):g} mm drawn over {length:.1f} px"
    image.full_clean()
    image.save(update_fields=["pixel_size_mm", "pixel_size_source"])
    measurement_recalibrate(image=image)
    return image
