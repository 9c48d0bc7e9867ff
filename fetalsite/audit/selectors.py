"""Reads of the access log, the patient behind a logged object, and the chain verification."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from django.apps import apps
from django.db.models import QuerySet

from fetalsite.accounts.selectors import scope_to_user
from fetalsite.audit.chain import GENESIS_HASH, entry_fields, entry_hash_compute
from fetalsite.audit.models import AccessLogEntry, AccessLogHead

# object type -> (model, path from that model to the patient's id, path to the patient's clinic id)
PATIENT_PATHS: dict[str, tuple[str, str, str]] = {
    "patient": ("patients.Patient", "id", "clinic_id"),
    "study": ("patients.Study", "patient_id", "patient__clinic_id"),
    "image": ("patients.UltrasoundImage", "study__patient_id", "study__patient__clinic_id"),
    "job": ("classifier.ClassificationJob", "image__study__patient_id", "image__study__patient__clinic_id"),
    "prediction": (
        "classifier.Prediction",
        "job__image__study__patient_id",
        "job__image__study__patient__clinic_id",
    ),
    "measurement": ("biometry.Measurement", "image__study__patient_id", "image__study__patient__clinic_id"),
}


@dataclass(frozen=True)
class PatientRef:
    patient_id: int | None
    clinic_id: int | None


def patient_ref_get(*, object_type: str | None, object_id: int | None) -> PatientRef:
    """The patient (and their clinic) an object belongs to, in one small query; unknowns give None."""
    if object_type not in PATIENT_PATHS or object_id is None:
        return PatientRef(None, None)
    model_label, patient_path, clinic_path = PATIENT_PATHS[object_type]
    row = apps.get_model(model_label).objects.filter(id=object_id).values_list(patient_path, clinic_path).first()
    return PatientRef(*row) if row else PatientRef(None, None)


def patient_ids_of(*, object_type: str, object_ids: Iterable[int]) -> set[int]:
    """The patients behind these objects, in one query."""
    model_label, patient_path, _ = PATIENT_PATHS[object_type]
    rows = apps.get_model(model_label).objects.filter(id__in=list(object_ids)).values_list(patient_path, flat=True)
    return {patient_id for patient_id in rows.distinct() if patient_id is not None}


# model label ("patients.Study") -> object type ("study")
_LISTED_TYPES: dict[str, str] = {model_label: object_type for object_type, (model_label, _, _) in PATIENT_PATHS.items()}


def patient_ids_listed(listed: dict[str, list]) -> set[int]:
    """The patients behind the instances a response listed (``fetalsite.core.shown``), model label by label.

    Patients and studies carry their patient's id (no query); the others cost one query per model."""
    patient_ids: set[int] = set()
    for label, items in listed.items():
        object_type = _LISTED_TYPES.get(label)
        if object_type is None:
            continue  # holds no patient data
        patient_path = PATIENT_PATHS[object_type][1]
        if "__" not in patient_path:
            patient_ids.update(getattr(item, patient_path) for item in items)
        else:
            patient_ids |= patient_ids_of(object_type=object_type, object_ids=[item.pk for item in items])
    return patient_ids


def access_log_list(*, user, filters: dict | None = None) -> QuerySet[AccessLogEntry]:
    """Entries the user may see: their clinic's for clinic staff, all for superusers; newest first."""
    filters = filters or {}
    entries = scope_to_user(AccessLogEntry.objects.select_related("user", "clinic"), user=user)
    if filters.get("patient_id") is not None:
        entries = entries.showing_patient(filters["patient_id"])
    if filters.get("user_id") is not None:
        entries = entries.filter(user_id=filters["user_id"])
    return entries.order_by("-created_at", "-id")


CSV_COLUMNS = (
    "id",
    "created_at",
    "username",
    "user_id",
    "clinic_id",
    "action",
    "object_type",
    "object_id",
    "patient_id",
    "patient_ids",
    "method",
    "path",
    "status_code",
    "ip",
    "request_id",
    "prev_hash",
    "entry_hash",
)


def _csv_safe(value) -> str:
    """A cell a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def access_log_csv_rows(*, entries: QuerySet[AccessLogEntry]) -> Iterator[list[str]]:
    """The header, then one row per entry in chain order."""
    yield list(CSV_COLUMNS)
    for entry in entries.order_by("id").iterator(chunk_size=2000):
        fields = {name: getattr(entry, name) for name in CSV_COLUMNS}
        fields["created_at"] = entry.created_at.isoformat()
        if entry.patient_ids is not None:
            fields["patient_ids"] = json.dumps(entry.patient_ids, separators=(",", ":"))
        yield [_csv_safe(fields[name]) for name in CSV_COLUMNS]


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    head_hash: str
    broken_entry_id: int | None = None
    reason: str = ""


def access_log_verify() -> ChainReport:
    """Walk the chain in id order, recomputing every hash; stop at the first entry that does not fit."""
    prev_hash, checked = GENESIS_HASH, 0
    for entry in AccessLogEntry.objects.order_by("id").iterator(chunk_size=2000):
        if entry.prev_hash != prev_hash:
            return ChainReport(
                False,
                checked,
                prev_hash,
                entry.id,
                "its prev_hash does not match the previous entry's hash "
                "(an entry before it was removed, inserted or altered)",
            )
        if entry_hash_compute(fields=entry_fields(entry), prev_hash=entry.prev_hash) != entry.entry_hash:
            return ChainReport(False, checked, prev_hash, entry.id, "its content does not match its hash (altered)")
        prev_hash, checked = entry.entry_hash, checked + 1
    head = AccessLogHead.objects.filter(id=1).first()
    if head is not None and (head.last_hash != prev_hash or head.length != checked):
        return ChainReport(
            False,
            checked,
            prev_hash,
            head.last_entry_id,
            f"the chain head expects {head.length} entries ending in entry #{head.last_entry_id} "
            f"(entries were removed from the end)",
        )
    return ChainReport(True, checked, prev_hash)
