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


def model_version_list() -> QuerySet[ModelVersion]:
    return ModelVersion.objects.order_by("-registered_at", "-id")


def active_model_version() -> ModelVersion | None:
    return ModelVersion.objects.filter(is_active=True).first()


def model_card_figures(*, model_version: ModelVersion) -> dict:
    """The figures of a model card that the model page shows, tolerant of cards that lack some."""
    from classifier.labels import plane_display

    card = model_version.card or {}
    metrics = model_version.metrics or card.get("metrics") or {}
    test = metrics.get("test") if isinstance(metrics.get("test"), dict) else {}
    ci = test.get("ci") or {}
    per_class = test.get("per_class") or {}
    data = card.get("data") or {}
    return {
        "intended_use": card.get("intended_use", ""),
        "architecture": card.get("architecture", ""),
        "preprocessing": card.get("preprocessing", ""),
        "classes": [plane_display(label) for label in model_version.class_labels],
        "test": {
            "accuracy": test.get("accuracy"),
            "accuracy_ci": ci.get("accuracy"),
            "macro_f1": test.get("macro_f1"),
            "macro_f1_ci": ci.get("macro_f1"),
            "n": test.get("n"),
        }
        if test
        else None,
        "per_class": [
            {"name": plane_display(label), **row} for label, row in per_class.items() if isinstance(row, dict)
        ],
        "data_counts": [
            {"split": split, "source": source, "labels": labels}
            for split, sources in (data.get("counts") or {}).items()
            for source, labels in sources.items()
        ],
        "citations": data.get("citations") or [],
        "limits": card.get("limits") or [],
        "bar_misses": (metrics.get("bar") or {}).get("misses") or [],
        "other_metrics": {} if test else metrics,
    }


# ---- API lists ----------------------------------------------------------------------------------


def job_list(*, user) -> QuerySet[ClassificationJob]:
    jobs = scope_to_user(ClassificationJob.objects.select_related("model_version"), user=user)
    return jobs.order_by("-queued_at", "-id")


def prediction_list(*, user) -> QuerySet[Prediction]:
    predictions = scope_to_user(
        Prediction.objects.select_related("job", "job__model_version", "reviewed_by"), user=user
    )
    return predictions.order_by("-created_at", "-id")


def model_version_get(*, key: str) -> ModelVersion:
    """A version by ``name:version``, the string jobs and predictions show (404 if unknown)."""
    name, _, version = key.rpartition(":")
    return get_object_or_404(ModelVersion.objects.all(), name=name, version=version)
