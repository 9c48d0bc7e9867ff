"""Reads of patients, studies and images, always scoped to the user's clinic."""

from __future__ import annotations

from django.db.models import Count, Prefetch, Q, QuerySet
from django.shortcuts import get_object_or_404

from classifier.models import ClassificationJob
from fetalsite.accounts.selectors import scope_to_user
from patients.models import Patient, Study, UltrasoundImage


def patient_list(*, user, search: str = "") -> QuerySet[Patient]:
    patients = scope_to_user(Patient.objects.select_related("clinic"), user=user)
    if search:
        patients = patients.filter(
            Q(mrn__icontains=search) | Q(given_name__icontains=search) | Q(family_name__icontains=search)
        )
    return patients.order_by("family_name", "given_name", "id")


def patient_get(*, user, patient_id: int) -> Patient:
    return get_object_or_404(scope_to_user(Patient.objects.select_related("clinic"), user=user), id=patient_id)


def study_list(*, user, filters: dict | None = None) -> QuerySet[Study]:
    filters = filters or {}
    studies = scope_to_user(Study.objects.select_related("patient", "created_by"), user=user)
    if filters.get("patient"):
        studies = studies.filter(patient_id=filters["patient"])
    if filters.get("status"):
        studies = studies.filter(status=filters["status"])
    if filters.get("search"):
        term = filters["search"]
        studies = studies.filter(
            Q(patient__mrn__icontains=term)
            | Q(patient__given_name__icontains=term)
            | Q(patient__family_name__icontains=term)
        )
    studies = studies.annotate(
        image_count=Count("images", distinct=True),
        classified_count=Count(
            "images__jobs", filter=Q(images__jobs__status=ClassificationJob.Status.SUCCEEDED), distinct=True
        ),
    )
    return studies.order_by("-exam_date", "-id")


def study_get(*, user, study_id: int) -> Study:
    studies = scope_to_user(Study.objects.select_related("patient", "patient__clinic", "created_by"), user=user)
    return get_object_or_404(studies, id=study_id)


def _images_with_latest_job(queryset: QuerySet[UltrasoundImage]) -> QuerySet[UltrasoundImage]:
    jobs = ClassificationJob.objects.select_related("model_version", "prediction", "prediction__reviewed_by")
    return queryset.select_related("study", "study__patient", "uploaded_by").prefetch_related(
        Prefetch("jobs", queryset=jobs.order_by("-queued_at", "-id"), to_attr="jobs_newest_first")
    )


def image_list(*, user, study_id: int | None = None) -> QuerySet[UltrasoundImage]:
    images = scope_to_user(UltrasoundImage.objects.all(), user=user)
    if study_id is not None:
        images = images.filter(study_id=study_id)
    return _images_with_latest_job(images).order_by("uploaded_at", "id")


def image_get(*, user, image_id: int) -> UltrasoundImage:
    images = _images_with_latest_job(scope_to_user(UltrasoundImage.objects.all(), user=user))
    return get_object_or_404(images, id=image_id)


def latest_job(image: UltrasoundImage) -> ClassificationJob | None:
    """The newest job of an image fetched through ``image_list``/``image_get``."""
    jobs = getattr(image, "jobs_newest_first", None)
    if jobs is None:
        jobs = list(image.jobs.select_related("model_version", "prediction").order_by("-queued_at", "-id"))
    return jobs[0] if jobs else None
