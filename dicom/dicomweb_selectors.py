"""Reads behind QIDO-RS and WADO-RS: the caller's clinic's DICOM studies, series and instances.

Everything is scoped through the user's clinics first, so another clinic's UID is never found: a search for it is
empty and a retrieval a 404, exactly as for a UID nobody stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.db.models import Count, Min, Q, QuerySet, Value
from django.db.models.functions import Concat
from django.http import Http404
from django.shortcuts import get_object_or_404

from dicom.worklist import has_wildcards, wildcard_regex
from fetalsite.accounts.selectors import scope_to_user, visible_clinic_ids
from patients.models import DicomInstance, Study


@dataclass(frozen=True)
class QidoMatch:
    """The matching keys a QIDO-RS search gives (empty: not given). UIDs may list several (UID list matching)."""

    patient_id: str = ""
    patient_name: str = ""
    accession_number: str = ""
    study_date_from: date | None = None
    study_date_to: date | None = None
    study_uids: tuple[str, ...] = ()
    series_uids: tuple[str, ...] = ()
    sop_instance_uids: tuple[str, ...] = ()
    limit: int = 100
    offset: int = 0


def _text_match(queryset: QuerySet, lookup: str, value: str) -> QuerySet:
    if has_wildcards(value):
        return queryset.filter(**{f"{lookup}__regex": f"^{wildcard_regex(value)}$"})
    return queryset.filter(**{lookup: value})


def _name_match(studies: QuerySet[Study], key: str) -> QuerySet[Study]:
    """Patient's Name as the worklist matches it: ``Family^Given`` with wildcards, case-insensitive; a key without
    ``^`` may also name the family alone (``SMITH``, ``SM*``)."""
    regex = f"^{wildcard_regex(key.rstrip('^'))}$"
    studies = studies.annotate(patient_pn=Concat("patient__family_name", Value("^"), "patient__given_name"))
    condition = Q(patient_pn__iregex=regex)
    if "^" not in key:
        condition |= Q(patient__family_name__iregex=regex)
    return studies.filter(condition)


def _instances(*, user) -> QuerySet[DicomInstance]:
    instances = DicomInstance.objects.select_related("image", "image__study", "image__study__patient")
    clinic_ids = visible_clinic_ids(user=user)
    return instances if clinic_ids is None else instances.filter(clinic_id__in=clinic_ids)


def _stored(instances: QuerySet[DicomInstance]) -> QuerySet[DicomInstance]:
    """Those whose original is kept (what WADO-RS can send)."""
    return instances.exclude(image__original="").exclude(image__original__isnull=True)


def qido_study_list(*, user, match: QidoMatch) -> QuerySet[Study]:
    """The DICOM studies (those with a Study Instance UID) of the user's clinic matching ``match``."""
    studies = scope_to_user(Study.objects.select_related("patient"), user=user).exclude(
        Q(study_instance_uid__isnull=True) | Q(study_instance_uid="")
    )
    if match.patient_id:
        studies = _text_match(studies, "patient__mrn", match.patient_id)
    if match.accession_number:
        studies = _text_match(studies, "accession_number", match.accession_number)
    if match.patient_name:
        studies = _name_match(studies, match.patient_name)
    if match.study_date_from:
        studies = studies.filter(exam_date__gte=match.study_date_from)
    if match.study_date_to:
        studies = studies.filter(exam_date__lte=match.study_date_to)
    if match.study_uids:
        studies = studies.filter(study_instance_uid__in=match.study_uids)
    studies = studies.annotate(
        instance_count=Count("images__dicom", distinct=True),
        series_count=Count("images__dicom__series_instance_uid", distinct=True),
    )
    return studies.order_by("-exam_date", "id")[match.offset : match.offset + match.limit]


def qido_study_sop_classes(*, user, studies: list[Study]) -> dict[int, set[str]]:
    """study id -> the SOP classes of its instances (for ModalitiesInStudy), in one query."""
    rows = _instances(user=user).filter(image__study__in=studies).values_list("image__study_id", "sop_class_uid")
    classes: dict[int, set[str]] = {}
    for study_id, sop_class in rows.distinct():
        classes.setdefault(study_id, set()).add(sop_class)
    return classes


def qido_series_list(*, user, study_uid: str, match: QidoMatch) -> list[dict]:
    """The series of one study of the user's clinic: their UID, instance count and a SOP class (for Modality)."""
    instances = _instances(user=user).filter(study_instance_uid=study_uid)
    if match.series_uids:
        instances = instances.filter(series_instance_uid__in=match.series_uids)
    rows = instances.values("series_instance_uid").annotate(
        instance_count=Count("id"), sop_class_uid=Min("sop_class_uid")
    )
    return list(rows.order_by("series_instance_uid")[match.offset : match.offset + match.limit])


def qido_instance_list(*, user, study_uid: str, series_uid: str | None, match: QidoMatch) -> QuerySet[DicomInstance]:
    instances = _instances(user=user).filter(study_instance_uid=study_uid)
    if series_uid is not None:
        instances = instances.filter(series_instance_uid=series_uid)
    if match.series_uids:
        instances = instances.filter(series_instance_uid__in=match.series_uids)
    if match.sop_instance_uids:
        instances = instances.filter(sop_instance_uid__in=match.sop_instance_uids)
    return instances.order_by("created_at", "id")[match.offset : match.offset + match.limit]


def wado_instance_get(*, user, study_uid: str, series_uid: str, instance_uid: str) -> DicomInstance:
    """One stored instance of the user's clinic with its original kept (404 for unknown and other clinics')."""
    return get_object_or_404(
        _stored(_instances(user=user)),
        study_instance_uid=study_uid,
        series_instance_uid=series_uid,
        sop_instance_uid=instance_uid,
    )


def wado_instance_list(*, user, study_uid: str, series_uid: str | None = None) -> list[DicomInstance]:
    """Every stored instance of one study (or one of its series) of the user's clinic, by series then arrival;
    a 404 when there is none, whether the UIDs are unknown or another clinic's."""
    instances = _stored(_instances(user=user)).filter(study_instance_uid=study_uid)
    if series_uid is not None:
        instances = instances.filter(series_instance_uid=series_uid)
    found = list(instances.order_by("series_instance_uid", "created_at", "id"))
    if not found:
        raise Http404("No such study or series.")
    return found
