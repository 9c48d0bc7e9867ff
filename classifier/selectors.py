"""Reads of jobs, predictions and model versions, scoped to the user's clinic."""

from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from classifier.models import ClassificationJob, ModelVersion, Prediction
from fetalsite.accounts.selectors import scope_to_user


def job_get(*, user, job_id: int) -> ClassificationJob:
    jobs = scope_to_user(ClassificationJob.objects.select_related("model_version"), user=user)
    return get_object_or_404(jobs, id=job_id)


def prediction_get(*, user, prediction_id: int) -> Prediction:
    predictions = scope_to_user(
        Prediction.objects.select_related("job", "job__model_version", "job__image", "reviewed_by"), user=user
    )
    return get_object_or_404(predictions, id=prediction_id)


def prediction_for_image(*, user, image_id: int) -> Prediction:
    """The prediction of the image's newest succeeded job (404 if none)."""
    predictions = scope_to_user(Prediction.objects.select_related("job", "reviewed_by"), user=user)
    prediction = predictions.filter(job__image_id=image_id).order_by("-job__queued_at", "-id").first()
    if prediction is None:
        from django.http import Http404

        raise Http404("This image has no prediction yet.")
    return prediction


def model_version_list() -> QuerySet[ModelVersion]:
    return ModelVersion.objects.order_by("-registered_at", "-id")


def active_model_version() -> ModelVersion | None:
    return ModelVersion.objects.filter(is_active=True).first()
