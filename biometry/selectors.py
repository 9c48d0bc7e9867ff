"""Reads of head measurements, scoped to the user's clinic. (A patient's growth-chart points:
biometry/growth_points.py.)"""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet
from django.shortcuts import get_object_or_404

from biometry.models import Measurement, MeasurementJob
from fetalsite.accounts.selectors import scope_to_user

_MEASUREMENTS = "measurements_in_order"
_RELATED = ("job", "reviewed_by")


def measurement_job_request_id(*, job_id: int) -> str:
    """The request id a job was queued under, for the worker's log scope ("" when none or gone)."""
    return MeasurementJob.objects.filter(id=job_id).values_list("request_id", flat=True).first() or ""


def _measurements() -> QuerySet[Measurement]:
    return Measurement.objects.select_related(*_RELATED).order_by("created_at", "id")


def measurements_prefetch() -> Prefetch:
    """For an image queryset: each image's measurements, oldest first, so ``image_measurements`` needs no
    query of its own (the image API's list and detail)."""
    return Prefetch("measurements", queryset=_measurements(), to_attr=_MEASUREMENTS)


def image_measurements(image) -> list[Measurement]:
    """An image's measurements (one per segmentation model), oldest first; prefetched or read now."""
    prefetched = getattr(image, _MEASUREMENTS, None)
    if prefetched is not None:
        return prefetched
    # Through the image's manager, each measurement's ``image`` is this image: no query for its study later.
    return list(image.measurements.select_related(*_RELATED).order_by("created_at", "id"))


def measurement_list_for_image(*, user, image_id: int) -> list[Measurement]:
    """The measurements of one image of the user's clinics (empty for another clinic's or a missing image)."""
    measurements = scope_to_user(_measurements().select_related("image__study__patient"), user=user)
    return list(measurements.filter(image_id=image_id))


def measurement_get(*, user, measurement_id: int) -> Measurement:
    """A measurement of the user's clinics, with its image and study (404 for another clinic's or none)."""
    measurements = scope_to_user(Measurement.objects.select_related(*_RELATED, "image__study__patient"), user=user)
    return get_object_or_404(measurements, id=measurement_id)
