"""Writes for head measurements: the job a brain plane queues, the worker's run, the clinician's review and the
recalibration that follows a new pixel size.

Flags (``Measurement.flags``, docs/biometry.md): the model's fit's own (``empty``, ``tiny``, ``border``,
``poor_fit``) never change once measured; the derived ones are recomputed whenever the ellipse, the pixel size or
the image's plane changes: ``hc_implausible`` (a calibrated HC outside 50-400 mm), ``not_brain`` (the image's
plane is no longer brain: a clinician corrected it away, after or before it was measured) and ``plane_uncertain``
(the brain plane is the model's flagged, unreviewed suggestion: a photograph or a blank image the classifier
called brain stays flagged). ``needs_review`` is whether any flag is set. Not being calibrated is no flag: it is
a null pixel size, and the API and pages say "not calibrated".
"""

from __future__ import annotations

import functools
import logging
import math

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from biometry import webhook_events
from biometry.ml.ellipse import (
    FLAG_HC_IMPLAUSIBLE,
    PLAUSIBLE_HC_MM,
    Ellipse,
    ellipse_from_axis_ends,
    ellipse_from_three_points,
    head_measurement,
)
from biometry.models import Measurement, MeasurementJob
from biometry.presentation import current_ellipse_json, ellipse_json
from biometry.registry import segmenter, segmenter_name
from classifier import webhooks
from classifier.labels import FetalPlane
from classifier.models import Prediction
from classifier.selectors import image_latest_prediction
from classifier.services import refuse_signed_study, webhook_deliveries_send
from fetalsite.accounts.roles import require_permission
from fetalsite.core.jobs import running_abandoned_before, stale_job_ids
from fetalsite.core.request_id import current_request_id

logger = logging.getLogger(__name__)

FLAG_NOT_BRAIN = "not_brain"
FLAG_PLANE_UNCERTAIN = "plane_uncertain"
# Recomputed from the current ellipse, the pixel size and the plane; the fit's flags stay as measured.
DERIVED_FLAGS = (FLAG_HC_IMPLAUSIBLE, FLAG_NOT_BRAIN, FLAG_PLANE_UNCERTAIN)

REVIEW_ACTIONS = ("accept", "adjust", "redraw", "reject")


def _image_model():
    """patients.UltrasoundImage, reached through the relation: biometry sits below patients."""
    return MeasurementJob._meta.get_field("image").related_model


# ---- Queueing tasks ------------------------------------------------------------------------------
# As in classifier: services queue the task after commit, the task calls services (the one pair that import
# each other, the task lazily).


def _send(job_id: int, countdown: float = 0) -> None:
    from biometry.tasks import measure_image as measure_image_task

    try:
        result = measure_image_task.apply_async(kwargs={"job_id": job_id}, countdown=countdown or None)
    except Exception:
        # The broker is down: the job stays QUEUED and the sweeper resends it.
        logger.exception("Could not enqueue measurement job %s; it stays queued", job_id)
        return
    MeasurementJob.objects.filter(id=job_id).update(celery_task_id=result.id or "")


@transaction.atomic
def measurement_request(*, image, request_id: str = "") -> MeasurementJob | None:
    """Queue the measurement of a still with the configured segmentation model: one job per image and model,
    so a second brain signal (a confirming review, a redelivered prediction) finds the first job. None for a
    clip (its key frames are stills, measured on their own) and when no model card can be read (logged)."""
    if image.is_cine:
        return None
    try:
        model_name = segmenter_name()
    except (OSError, ValueError) as error:
        logger.error(
            "No readable segmentation model card (BIOMETRY_MODEL_CARD: %s); image %s not measured", error, image.id
        )
        return None
    _image_model().objects.select_for_update().filter(id=image.id).first()  # two signals at once make one job
    existing = MeasurementJob.objects.filter(image_id=image.id, model_version=model_name).first()
    if existing is not None:
        return existing
    job = MeasurementJob(
        image_id=image.id,
        model_version=model_name,
        queued_at=timezone.now(),
        request_id=request_id or current_request_id(),
    )
    job.full_clean(validate_constraints=False)
    job.save()
    transaction.on_commit(functools.partial(_send, job.id))
    return job


def measurement_plane_update(*, image_id: int, plane: str) -> MeasurementJob | None:
    """The classifier set the image's plane (its model or a clinician): measure a brain plane, and flag (or
    unflag) the image's measurements when it stops (or starts again) being one."""
    with transaction.atomic():
        image = _image_model().objects.select_related("study__patient").filter(id=image_id).first()
        if image is None:
            return None
        for measurement in Measurement.objects.select_for_update().filter(image_id=image_id).order_by("id"):
            before = list(measurement.flags)
            _derive(measurement, image=image)
            if measurement.flags != before:
                measurement._change_reason = f"plane: {plane or 'not a plane'}"
                measurement.save(update_fields=["flags", "needs_review"])
        if plane == FetalPlane.FETAL_BRAIN:
            return measurement_request(image=image)
        return None


def measurement_jobs_requeue_stale() -> list[int]:
    """Beat: send again the jobs the broker may never have received or may have lost. Sending twice is safe:
    the worker claims a job under a row lock."""
    job_ids = stale_job_ids(MeasurementJob.objects.all())
    for job_id in job_ids:
        _send(job_id)
    if job_ids:
        logger.info("Re-enqueued %d stale measurement jobs: %s", len(job_ids), job_ids[:20])
    return job_ids


# ---- The worker's run ----------------------------------------------------------------------------


def measurement_job_start(*, job_id: int) -> MeasurementJob | None:
    """Claim a job for running; None when there is nothing to do (finished, running, gone, out of attempts)."""
    with transaction.atomic():
        job = MeasurementJob.objects.select_for_update(of=("self",)).select_related("image").filter(id=job_id).first()
        if job is None:
            logger.warning("Measurement job %s does not exist; message dropped", job_id)
            return None
        runnable = job.status == MeasurementJob.Status.QUEUED or (
            job.status == MeasurementJob.Status.RUNNING and job.started_at < running_abandoned_before()
        )
        if not runnable:
            return None
        if job.attempts >= settings.MEASURE_MAX_RETRIES + 1:  # a job that keeps killing its worker must end
            measurement_job_mark_failed(job_id=job.id, reason=f"Gave up after {job.attempts} attempts.")
            return None
        job.status = MeasurementJob.Status.RUNNING
        job.attempts += 1
        job.started_at = timezone.now()
        job.save(update_fields=["status", "attempts", "started_at"])
        return job


def measurement_run(*, job_id: int) -> MeasurementJob | None:
    """The task's whole body: claim the job, find the head on the image's display rendition, save the
    measurement. Idempotent; an exception is left to the task (retry or fail)."""
    from classifier.ml.preprocessing import load_image

    job = measurement_job_start(job_id=job_id)
    if job is None:
        return None
    model = segmenter()
    if model.name != job.model_version:
        reason = f"The configured segmentation model is now {model.name}; this job was for {job.model_version}."
        return measurement_job_mark_failed(job_id=job.id, reason=reason)
    with job.image.file.open("rb") as handle:  # storage-agnostic, as the classifier reads it
        data = handle.read()
    finding = model.find_head(load_image(data))
    return measurement_save(job_id=job.id, finding=finding, runtime=model.runtime)


def measurement_save(*, job_id: int, finding, runtime: str) -> MeasurementJob:
    """Save a running job's measurement from a ``biometry.ml.segmentation.HeadFinding`` and finish the job,
    exactly once (a redelivered run that finds it saved saves nothing). No ellipse: a measurement without one,
    flagged ``empty``."""
    with transaction.atomic():
        job = MeasurementJob.objects.select_for_update().select_related("image__study__patient").get(id=job_id)
        if job.status != MeasurementJob.Status.RUNNING or Measurement.objects.filter(job=job).exists():
            return job
        image, fit = job.image, finding.fit
        measurement = Measurement(
            job=job,
            image=image,
            flags=list(fit.flags),
            fit_iou=fit.iou if fit.ellipse is not None else None,
            inference_ms=finding.inference_ms,
            total_ms=finding.total_ms,
            runtime=runtime,
        )
        if fit.ellipse is not None:
            measurement.model_ellipse = ellipse_json(fit.ellipse)
            _set_ellipse(measurement, fit.ellipse)
        _calibrate(measurement, image=image)
        _derive(measurement, image=image)
        measurement.full_clean()
        measurement.save()
        job.status = MeasurementJob.Status.SUCCEEDED
        job.error = ""
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "error", "finished_at"])
        _webhook(measurement, event_type=webhook_events.MEASUREMENT_CREATED, request_id=job.request_id)
        return job


def measurement_job_retry_or_fail(*, job_id: int, reason: str) -> None:
    """A run failed: queued again after MEASURE_RETRY_COUNTDOWN, or failed for good after MEASURE_MAX_RETRIES."""
    with transaction.atomic():
        job = MeasurementJob.objects.select_for_update().filter(id=job_id).first()
        if job is None or job.is_finished:
            return
        if job.attempts > settings.MEASURE_MAX_RETRIES:
            logger.error("Measurement job %s failed for good after %s attempts: %s", job_id, job.attempts, reason)
            measurement_job_mark_failed(job_id=job_id, reason=reason)
            return
        logger.warning("Measurement job %s failed (attempt %s), retrying: %s", job_id, job.attempts, reason)
        job.status = MeasurementJob.Status.QUEUED
        job.error = reason[:2000]
        job.save(update_fields=["status", "error"])
        transaction.on_commit(functools.partial(_send, job_id, countdown=settings.MEASURE_RETRY_COUNTDOWN))


@transaction.atomic
def measurement_job_mark_failed(*, job_id: int, reason: str) -> MeasurementJob | None:
    job = MeasurementJob.objects.select_for_update().filter(id=job_id).first()
    if job is None or job.status == MeasurementJob.Status.SUCCEEDED:
        return job
    job.status = MeasurementJob.Status.FAILED
    job.error = reason[:2000]
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "error", "finished_at"])
    return job


# ---- Review and recalibration --------------------------------------------------------------------


def _points(value, *, field: str, count: int) -> list[tuple[float, float]]:
    """``count`` (x, y) pairs of finite numbers, or a ValidationError on ``field`` saying what is wrong."""
    message = f"Give {count} points, each [x, y] in image pixels."
    if not isinstance(value, list | tuple) or len(value) != count:
        raise ValidationError({field: message})
    points = []
    for point in value:
        if not isinstance(point, list | tuple) or len(point) != 2:
            raise ValidationError({field: message})
        try:
            x, y = float(point[0]), float(point[1])
        except (TypeError, ValueError):
            raise ValidationError({field: message})
        if not (math.isfinite(x) and math.isfinite(y)):
            raise ValidationError({field: message})
        points.append((x, y))
    return points


def _drawn_ellipse(*, action: str, axis_ends, points, image) -> Ellipse | None:
    """The ellipse a clinician drew (adjust: the four axis ends; redraw: three points), None for accept and
    reject; a ValidationError for clicks that describe no ellipse or one centred off the image."""
    given = {"axis_ends": axis_ends is not None, "points": points is not None}
    wanted = {"adjust": "axis_ends", "redraw": "points"}.get(action)
    for field, present in given.items():
        if present and field != wanted:
            raise ValidationError({field: f"Only for {'adjust' if field == 'axis_ends' else 'redraw'}."})
    if wanted is None:
        return None
    try:
        if action == "adjust":
            ends = _points(axis_ends, field="axis_ends", count=4)
            ellipse = ellipse_from_axis_ends((ends[0], ends[1]), (ends[2], ends[3]))
        else:
            ellipse = ellipse_from_three_points(*_points(points, field="points", count=3))
    except ValueError as error:
        raise ValidationError({wanted: f"These points describe no ellipse: {error}."})
    if not (0 <= ellipse.cx < image.width and 0 <= ellipse.cy < image.height):
        raise ValidationError({wanted: "The ellipse's centre must lie on the image."})
    if not ellipse.semi_major <= 2 * max(image.width, image.height):  # also refuses an overflow to infinity
        raise ValidationError({wanted: "The ellipse may be at most twice the image's size."})
    return ellipse


def _review_state(measurement: Measurement, action: str) -> str:
    State = Measurement.ReviewState
    if action == "reject":
        return State.REJECTED
    if action in ("adjust", "redraw"):
        return State.ADJUSTED
    if measurement.semi_major is None:
        raise ValidationError({"action": "There is no ellipse to accept: redraw it, or reject the measurement."})
    # Accepting an ellipse a clinician changed earlier keeps saying it is a person's, not the model's.
    return State.ACCEPTED if _is_models_ellipse(measurement) else State.ADJUSTED


def _is_models_ellipse(measurement: Measurement) -> bool:
    current, model = current_ellipse_json(measurement), measurement.model_ellipse
    if current is None or not model:
        return False
    return all(math.isclose(current[key], model[key], rel_tol=1e-9, abs_tol=1e-9) for key in current)


@transaction.atomic
def measurement_review(
    *,
    measurement: Measurement,
    reviewed_by,
    action: str,
    axis_ends=None,
    points=None,
    comment: str = "",
) -> Measurement:
    """A clinician accepts the ellipse, adjusts it (four axis ends: two of the OFD, then two of the BPD), redraws
    it (three points: two ends of one axis and one point of the curve) or rejects it. Any state may be reviewed
    again (a rejected one too); the model's ellipse never changes, and every review is a history row."""
    require_permission(
        reviewed_by,
        "biometry.review_measurement",
        clinic_id=measurement.image.study.patient.clinic_id,
        action="review head measurements",
    )
    if action not in REVIEW_ACTIONS:
        raise ValidationError({"action": f"Choose one of: {', '.join(REVIEW_ACTIONS)}."})
    refuse_signed_study(measurement.image)
    measurement = Measurement.objects.select_for_update().select_related("image").get(id=measurement.id)
    image = measurement.image
    drawn = _drawn_ellipse(action=action, axis_ends=axis_ends, points=points, image=image)
    if drawn is not None:
        _set_ellipse(measurement, drawn)
        _calibrate(measurement, image=image, copy_pixel_size=False)
        _derive(measurement, image=image)
    measurement.review_state = _review_state(measurement, action)
    measurement.reviewed_by = reviewed_by
    measurement.reviewed_at = timezone.now()
    measurement.review_comment = comment.strip()
    measurement._history_user = reviewed_by
    measurement._change_reason = f"review: {action}"
    measurement.full_clean()
    measurement.save()
    _webhook(measurement, event_type=webhook_events.MEASUREMENT_REVIEWED, request_id="")
    return measurement


@transaction.atomic
def measurement_recalibrate(*, image) -> int:
    """The image's pixel size changed (patients.services, which checked who may): copy it into each of its
    measurements, recompute the millimetres and ``hc_implausible``; one history row each. Reviews stand: the
    ellipse did not move. Returns how many measurements changed."""
    changed = 0
    for measurement in Measurement.objects.select_for_update().filter(image_id=image.id).order_by("id"):
        _calibrate(measurement, image=image)
        _derive(measurement, image=image)
        measurement._change_reason = f"recalibrated: {image.pixel_size_source or 'not calibrated'}"
        measurement.full_clean()
        measurement.save()
        changed += 1
    return changed


# ---- The one place a measurement's figures and flags are worked out --------------------------------


def _set_ellipse(measurement: Measurement, ellipse: Ellipse) -> None:
    stored = ellipse_json(ellipse)
    measurement.center_x, measurement.center_y = stored["cx"], stored["cy"]
    measurement.semi_major, measurement.semi_minor = stored["semi_major"], stored["semi_minor"]
    measurement.angle_deg = stored["angle_deg"]


def _calibrate(measurement: Measurement, *, image, copy_pixel_size: bool = True) -> None:
    """HC, BPD and OFD of the current ellipse: pixels always, millimetres only with a pixel size."""
    if copy_pixel_size:
        measurement.pixel_size_mm = image.pixel_size_mm
        measurement.calibration_source = image.pixel_size_source if image.pixel_size_mm is not None else ""
    if measurement.semi_major is None:
        measurement.hc_px = measurement.bpd_px = measurement.ofd_px = None
        measurement.hc_mm = measurement.bpd_mm = measurement.ofd_mm = None
        return
    ellipse = Ellipse(
        measurement.center_x,
        measurement.center_y,
        measurement.semi_major,
        measurement.semi_minor,
        math.radians(measurement.angle_deg),
    )
    figures = head_measurement(ellipse, pixel_size_mm=measurement.pixel_size_mm)
    measurement.hc_px, measurement.bpd_px, measurement.ofd_px = figures.hc_px, figures.bpd_px, figures.ofd_px
    measurement.hc_mm, measurement.bpd_mm, measurement.ofd_mm = figures.hc_mm, figures.bpd_mm, figures.ofd_mm


def _plane_flags(image) -> list[str]:
    prediction = image_latest_prediction(image)
    if prediction is None:  # classified again and not finished yet: the plane is not known to have changed
        return []
    if prediction.final_label != FetalPlane.FETAL_BRAIN:
        return [FLAG_NOT_BRAIN]
    if prediction.review_state == Prediction.ReviewState.SUGGESTED and prediction.needs_review:
        return [FLAG_PLANE_UNCERTAIN]
    return []


def _derive(measurement: Measurement, *, image) -> None:
    """The derived flags (DERIVED_FLAGS) from the figures and the image's plane now; needs_review follows."""
    kept = [flag for flag in measurement.flags if flag not in DERIVED_FLAGS]
    low, high = PLAUSIBLE_HC_MM
    implausible = measurement.hc_mm is not None and not low <= measurement.hc_mm <= high
    derived = [FLAG_HC_IMPLAUSIBLE] if implausible else []
    measurement.flags = kept + derived + _plane_flags(image)
    measurement.needs_review = bool(measurement.flags)


def _webhook(measurement: Measurement, *, event_type: str, request_id: str) -> None:
    deliveries = webhooks.webhook_event_record(
        event_type=event_type,
        clinic_id=measurement.image.study.patient.clinic_id,
        subject=measurement,
        request_id=request_id,
    )
    webhook_deliveries_send(deliveries)
