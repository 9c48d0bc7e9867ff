"""Writes for the model registry, classification jobs and predictions."""

from __future__ import annotations

import functools
import json
import logging
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from classifier import webhooks
from classifier.labels import PLANE_LABELS
from classifier.ml.inference import file_sha256
from classifier.models import (
    CineFrames,
    ClassificationJob,
    ModelVersion,
    Prediction,
    WebhookDelivery,
    WebhookEndpoint,
)
from classifier.selectors import active_model_version, image_latest_prediction
from fetalsite.accounts.roles import require_permission, user_can_review
from fetalsite.core.errors import ApplicationError
from fetalsite.core.jobs import running_abandoned_before, stale_job_ids
from fetalsite.core.request_id import current_request_id, request_id_scope

logger = logging.getLogger(__name__)


class JobNotRetryable(ApplicationError):
    http_status = 409
    code = "job_not_retryable"


class StudySignedOff(ApplicationError):
    """A write to a signed-off study (an upload, a review, an exclusion, an edit...): it is read-only until a
    clinician reopens it. Defined here, the lowest layer that refuses such writes (a review), and raised by
    patients.services too, so every refusal is this one class and code."""

    http_status = 409
    code = "study_signed_off"


def refuse_signed_study(image) -> None:
    """Reviews and retries change what a study shows: none once it is signed off (biometry's measurement reviews
    call this too). The classifier cannot import
    patients, so the study is reached through the image's relation; its row is locked so a sign-off waits
    for this write to commit (or this write sees it signed)."""
    study_model = image._meta.get_field("study").related_model
    status = study_model.objects.select_for_update().values_list("status", flat=True).get(id=image.study_id)
    if status != "OPEN":  # patients.models.Study.Status.OPEN
        raise StudySignedOff("This study is signed off and read-only; a clinician can reopen it.")


# ---- Model registry -------------------------------------------------------------------------


@transaction.atomic
def model_version_register(*, card_path: Path, activate: bool = False) -> ModelVersion:
    """Register (or refresh) the model described by a card JSON file in MODELS_DIR."""
    card = json.loads(Path(card_path).read_text())
    missing = {"name", "version", "file", "classes", "input_size", "needs_review_threshold"} - set(card)
    if missing:
        raise ValidationError(f"The model card {card_path} lacks {', '.join(sorted(missing))}.")
    model_file = Path(card_path).parent / card["file"]
    if not model_file.is_file():
        raise ValidationError(f"The model file {model_file} does not exist.")
    actual_sha = file_sha256(model_file)
    if card.get("sha256") and card["sha256"] != actual_sha:
        raise ValidationError(f"{model_file}: sha256 {actual_sha} differs from the card's {card['sha256']}.")
    if sorted(card["classes"]) != sorted(PLANE_LABELS):
        raise ValidationError(f"The model's classes {card['classes']} are not the four fetal planes.")
    models_dir = Path(settings.MODELS_DIR).resolve()
    resolved = model_file.resolve()
    file_path = str(resolved.relative_to(models_dir)) if resolved.is_relative_to(models_dir) else str(resolved)

    version, _ = ModelVersion.objects.select_for_update().get_or_create(
        name=card["name"],
        version=str(card["version"]),
        defaults={
            "file_path": file_path,
            "sha256": actual_sha,
            "class_labels": card["classes"],
            "input_size": card["input_size"],
            "review_threshold": card["needs_review_threshold"],
            "novelty_threshold": card.get("novelty_threshold"),
        },
    )
    version.file_path = file_path
    version.sha256 = actual_sha
    version.class_labels = list(card["classes"])
    version.input_size = int(card["input_size"])
    version.review_threshold = float(card["needs_review_threshold"])
    version.novelty_threshold = None if card.get("novelty_threshold") is None else float(card["novelty_threshold"])
    version.metrics = card.get("metrics", {})
    version.card = card
    version.full_clean(validate_constraints=False)
    version.save()
    if activate:
        version = model_version_activate(model_version=version)
    return version


@transaction.atomic
def model_version_activate(*, model_version: ModelVersion, activated_by=None) -> ModelVersion:
    """Make this version the one every clinic's new images are classified with.

    ``activated_by`` is the person doing it (only a superuser may: it changes every clinic's results); None
    means an operator at the server's command line (``register_models``)."""
    if activated_by is not None and not (activated_by.is_active and activated_by.is_superuser):
        raise PermissionDenied("Only a superuser may change the active model: it applies to every clinic.")
    ModelVersion.objects.select_for_update().filter(is_active=True).exclude(id=model_version.id).update(is_active=False)
    model_version.is_active = True
    model_version._history_user = activated_by
    model_version.save(update_fields=["is_active"])
    logger.warning(
        "Model %s is now active for every clinic (by %s)",
        model_version,
        activated_by.username if activated_by is not None else "the command line",
    )
    return model_version


# ---- Queueing tasks ------------------------------------------------------------------------------
# Services queue the Celery tasks and the tasks call services: the one pair of modules that import each other
# (the tasks lazily), as docs/architecture.md says. Nothing else in the app imports the tasks.


def _send(job_id: int, countdown: float = 0) -> None:
    from classifier.tasks import classify_image as classify_image_task

    try:
        result = classify_image_task.apply_async(kwargs={"job_id": job_id}, countdown=countdown or None)
    except Exception:
        # The broker is down: the job stays QUEUED in the database and the sweeper resends it.
        logger.exception("Could not enqueue classification job %s; it stays queued", job_id)
        return
    ClassificationJob.objects.filter(id=job_id).update(celery_task_id=result.id or "")


def _enqueue(job: ClassificationJob) -> None:
    transaction.on_commit(lambda: _send(job.id))


def _webhook_delivery_send(delivery_id: int) -> None:
    from classifier.tasks import webhook_delivery_attempt as webhook_delivery_attempt_task

    try:
        webhook_delivery_attempt_task.apply_async(kwargs={"delivery_id": delivery_id})
    except Exception:
        # The broker is down: the delivery stays PENDING and the sweeper (or an admin) sends it again.
        logger.exception("Could not queue webhook delivery %s", delivery_id)


def webhook_deliveries_send(deliveries: list[WebhookDelivery]) -> None:
    """Queue the deliveries a webhook event recorded, once the transaction that recorded them commits."""
    for delivery in deliveries:
        transaction.on_commit(functools.partial(_webhook_delivery_send, delivery.id))


def webhook_deliveries_requeue_stale() -> list[int]:
    """Resend deliveries whose message was never sent (broker down), was lost, or whose worker died.

    Run by Celery beat. A receiver may see an event twice; the event id header lets it drop repeats.
    """
    delivery_ids = webhooks.webhook_delivery_stale_ids()
    for delivery_id in delivery_ids:
        transaction.on_commit(functools.partial(_webhook_delivery_send, delivery_id))
    if delivery_ids:
        logger.info("Re-enqueued %d stale webhook deliveries", len(delivery_ids))
    return delivery_ids


@transaction.atomic
def webhook_delivery_resend(*, delivery: WebhookDelivery, resent_by) -> WebhookDelivery:
    """Send a delivery again now, with a fresh attempt budget (an admin action)."""
    require_permission(
        resent_by,
        "classifier.change_webhookdelivery",
        clinic_id=delivery.endpoint.clinic_id,
        action="send webhook deliveries again",
    )
    delivery = webhooks.webhook_delivery_reset(delivery_id=delivery.id)
    webhook_deliveries_send([delivery])
    return delivery


# ---- Webhook endpoints (the admin) --------------------------------------------------------------


class WebhookEndpointInactive(ApplicationError):
    http_status = 409
    code = "webhook_endpoint_inactive"


def _require_endpoint_permission(user, endpoint: WebhookEndpoint, *, action: str) -> None:
    require_permission(user, "classifier.change_webhookendpoint", clinic_id=endpoint.clinic_id, action=action)


@transaction.atomic
def webhook_endpoint_create(
    *, clinic, url: str, events: list[str], created_by, description: str = "", is_active: bool = True
) -> WebhookEndpoint:
    """Register a clinic's callback URL with a secret generated here; the caller shows the secret once."""
    require_permission(created_by, "classifier.add_webhookendpoint", clinic_id=clinic.id, action="add webhooks")
    endpoint = WebhookEndpoint(
        clinic=clinic,
        url=url,
        events=list(events),
        description=description,
        is_active=is_active,
        secret=WebhookEndpoint._meta.get_field("secret").get_default(),
    )
    endpoint._history_user = created_by
    return webhooks.webhook_endpoint_save(endpoint=endpoint)


@transaction.atomic
def webhook_endpoint_update(
    *, endpoint: WebhookEndpoint, url: str, events: list[str], description: str, is_active: bool, updated_by
) -> WebhookEndpoint:
    """Change where and what an endpoint is sent; its clinic and secret stay (rotate the secret on its own)."""
    _require_endpoint_permission(updated_by, endpoint, action="change webhooks")
    endpoint = WebhookEndpoint.objects.select_for_update().get(id=endpoint.id)
    endpoint.url, endpoint.events, endpoint.description, endpoint.is_active = url, list(events), description, is_active
    endpoint._history_user = updated_by
    return webhooks.webhook_endpoint_save(
        endpoint=endpoint, update_fields=["url", "events", "description", "is_active"]
    )


@transaction.atomic
def webhook_endpoint_secret_rotate(*, endpoint: WebhookEndpoint, rotated_by) -> WebhookEndpoint:
    """Replace the secret with a new one generated here (the caller shows it once). Every delivery from now on,
    retries of older events included, is signed with the new secret."""
    _require_endpoint_permission(rotated_by, endpoint, action="rotate webhook secrets")
    endpoint = WebhookEndpoint.objects.select_for_update().get(id=endpoint.id)
    endpoint.secret = WebhookEndpoint._meta.get_field("secret").get_default()
    endpoint._history_user = rotated_by
    return webhooks.webhook_endpoint_save(endpoint=endpoint, update_fields=["secret"])


@transaction.atomic
def webhook_test_event_send(*, endpoint: WebhookEndpoint, requested_by) -> WebhookDelivery:
    """Send a ``webhook.test`` event to one endpoint through the normal path: recorded as a delivery, queued
    after commit, signed, retried; whatever events the endpoint subscribed to."""
    _require_endpoint_permission(requested_by, endpoint, action="send webhook test events")
    if not endpoint.is_active:
        raise WebhookEndpointInactive("This endpoint is switched off: switch it on to send it a test event.")
    delivery = webhooks.webhook_test_event_record(endpoint=endpoint, requested_by=requested_by)
    webhook_deliveries_send([delivery])
    return delivery


# ---- Jobs -------------------------------------------------------------------------------------


@transaction.atomic
def classification_job_create(*, image) -> ClassificationJob:
    """Create the job for the active model (or a job that will fail: no model) and queue it."""
    job = ClassificationJob(
        image=image,
        model_version=active_model_version(),
        queued_at=timezone.now(),
        request_id=current_request_id(),  # the upload's: the worker logs and webhooks under it
    )
    job.full_clean(validate_constraints=False)
    job.save()
    _enqueue(job)
    return job


@transaction.atomic
def classification_job_retry(*, job: ClassificationJob, retried_by) -> ClassificationJob:
    """Queue a failed image again, with the model that is active now; whoever may upload may retry."""
    require_permission(
        retried_by,
        "patients.add_ultrasoundimage",
        clinic_id=job.image.study.patient.clinic_id,
        action="retry classification jobs",
    )
    refuse_signed_study(job.image)
    if job.status != ClassificationJob.Status.FAILED:
        raise JobNotRetryable("Only a failed job can be retried.")
    model_version = active_model_version()
    existing = ClassificationJob.objects.filter(image_id=job.image_id, model_version=model_version).first()
    if existing and existing.id != job.id and existing.status != ClassificationJob.Status.FAILED:
        return existing
    target = existing or job
    target.model_version = model_version
    target.status = ClassificationJob.Status.QUEUED
    target.attempts = 0
    target.error = ""
    target.queued_at = timezone.now()
    target.started_at = target.finished_at = None
    target.save()
    _enqueue(target)
    return target


def jobs_requeue_stale() -> list[int]:
    """Send again the jobs the broker may never have received or may have lost.

    Run periodically (Celery beat). Sending twice is safe: the worker claims a job under a row lock.
    """
    job_ids = stale_job_ids(ClassificationJob.objects.all())
    for job_id in job_ids:
        _send(job_id)
    if job_ids:
        logger.info("Re-enqueued %d stale classification jobs: %s", len(job_ids), job_ids[:20])
    return job_ids


def job_start(*, job_id: int) -> ClassificationJob | None:
    """Claim a job for running; None when there is nothing to do (finished, running, gone)."""
    jobs = job_batch_start(job_id=job_id, size=1)
    return jobs[0] if jobs else None


def job_batch_start(*, job_id: int, size: int) -> list[ClassificationJob]:
    """Claim a job and, for a still, up to ``size - 1`` other queued stills of its model, oldest first, in one
    transaction: the worker predicts them as one batch. Never waits for more: a lone job comes back alone.
    Empty when the job has nothing to do (finished, running, gone). Each co-claimed job's own message, when it
    comes, finds it not runnable and is dropped; if this worker dies, the sweeper requeues them all as stale."""
    with transaction.atomic():
        # Only the job's row is locked (of=self): its image's row is read, not held, while the batch is claimed.
        job = (
            ClassificationJob.objects.select_for_update(of=("self",)).select_related("image").filter(id=job_id).first()
        )
        if job is None:
            logger.warning("Classification job %s does not exist; message dropped", job_id)
            return []
        runnable = job.status == ClassificationJob.Status.QUEUED or (
            # Redelivered after its worker died: the previous attempt can no longer be running.
            job.status == ClassificationJob.Status.RUNNING and job.started_at < running_abandoned_before()
        )
        if not runnable:
            return []
        if job.attempts >= settings.CLASSIFY_MAX_RETRIES + 1:
            # A job that keeps killing its worker must end, not loop forever.
            job.status = ClassificationJob.Status.FAILED
            job.error = f"Gave up after {job.attempts} attempts; the last one did not finish."
            job.finished_at = timezone.now()
            job.save(update_fields=["status", "error", "finished_at"])
            webhook_deliveries_send(webhooks.webhook_job_failed_record(job=job))
            return []
        jobs = [job]
        if size > 1 and job.model_version_id is not None and not job.image.is_cine:
            jobs += _queued_stills(model_version_id=job.model_version_id, exclude_id=job.id, limit=size - 1)
        started_at = timezone.now()
        for claimed in jobs:
            claimed.status = ClassificationJob.Status.RUNNING
            claimed.attempts += 1
            claimed.started_at = started_at  # shared by a batch: the batch is visible in the jobs' rows
            claimed.save(update_fields=["status", "attempts", "started_at"])
        return jobs


def _queued_stills(*, model_version_id: int, exclude_id: int, limit: int) -> list[ClassificationJob]:
    """Queued still jobs of one model, oldest first, locked; rows another worker has locked are skipped
    (PostgreSQL; SQLite serialises writers anyway). Jobs out of attempts are left to their own message."""
    return list(
        ClassificationJob.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("image")
        .filter(
            status=ClassificationJob.Status.QUEUED,
            model_version_id=model_version_id,
            attempts__lt=settings.CLASSIFY_MAX_RETRIES + 1,
        )
        .exclude(id=exclude_id)
        .exclude(image__kind="cine")  # patients.models.UltrasoundImage.Kind.CINE: a clip is a job of its own
        .order_by("queued_at", "id")[:limit]
    )


def classification_job_run(*, job_id: int) -> ClassificationJob | None:
    """Run a job end to end, with the queued stills it can batch with: the worker's whole body. Idempotent.

    An exception left to the caller (the task) is the job's own; the co-claimed jobs have been dealt with."""
    from classifier.registry import classifier_for

    jobs = job_batch_start(job_id=job_id, size=settings.MICRO_BATCH_MAX)
    if not jobs:
        return None
    job, companions = jobs[0], jobs[1:]
    if job.model_version is None:
        return job_mark_failed(job_id=job.id, reason="No active model: an admin must register and activate one.")
    try:
        classifier = classifier_for(job.model_version)
        if job.image.is_cine:
            return _cine_job_run(job=job, classifier=classifier)
        return _still_batch_run(jobs=jobs, classifier=classifier)
    except BaseException as error:
        for companion in companions:  # the batch failed as a whole: each companion fails (or retries) alone
            job_retry_or_fail(job_id=companion.id, reason=_reason(error))
        raise


def _reason(error: BaseException) -> str:
    return f"{error.__class__.__name__}: {error}"


def _still_batch_run(*, jobs: list[ClassificationJob], classifier) -> ClassificationJob:
    """Decode each still once, predict them in one call, save each prediction (each exactly once). A job whose
    image fails to decode or whose save fails retries (or fails) alone; the first job's own error is raised
    last, for its task to handle, once the others are saved."""
    from classifier.ml.preprocessing import load_image

    failures: dict[int, BaseException] = {}
    decoded = []
    for job in jobs:
        try:
            with job.image.file.open("rb") as handle:
                decoded.append((job, load_image(handle.read())))
        except Exception as error:
            failures[job.id] = error
    results = classifier.classify_batch([image for _, image in decoded]) if decoded else []
    if len(jobs) > 1:
        logger.info("Classified a batch of %d jobs: %s", len(decoded), [job.id for job, _ in decoded])
    for (job, _), result in zip(decoded, results, strict=True):
        try:
            with request_id_scope(job.request_id, job_id=job.id):  # a companion's lines under its own upload's id
                prediction_save(job_id=job.id, result=result)
        except Exception as error:
            failures[job.id] = error
    lead = jobs[0]
    for job in jobs[1:]:
        if job.id in failures:
            job_retry_or_fail(job_id=job.id, reason=_reason(failures[job.id]))
    if lead.id in failures:
        raise failures[lead.id]
    return ClassificationJob.objects.get(id=lead.id)


def _cine_job_run(*, job: ClassificationJob, classifier) -> ClassificationJob | None:
    """A clip: its frames decoded once, classified in batches, the key frames kept as they stream past."""
    from classifier.ml.frames import ClipError, iter_frames
    from classifier.ml.keyframes import KeyFramePicker

    with job.image.original.open("rb") as handle:  # the clip as it came; ``file`` is only its first frame
        data = handle.read()
    picker = KeyFramePicker(classifier.class_names)
    try:
        scores = classifier.classify_frames(
            iter_frames(data), batch_size=settings.CINE_BATCH_SIZE, on_batch=picker.offer_batch
        )
    except ClipError as error:  # decoding it again would fail again: no retries
        return job_mark_failed(job_id=job.id, reason=f"The clip cannot be decoded: {error}")
    if scores.frame_count == 0:
        return job_mark_failed(job_id=job.id, reason="The clip has no frames.")
    return cine_frames_save(job_id=job.id, scores=scores, key_frames=picker.key_frames())


def cine_frames_save(*, job_id: int, scores, key_frames: list) -> ClassificationJob:
    """Save a clip job's per-frame scores and key frames and finish the job, exactly once.

    ``scores`` is a classifier.ml.inference.FrameScores, ``key_frames`` KeyFrames. The clip has no Prediction
    (nor heatmap, nor prediction.created webhook): its key frames become stills, each with its own job, through
    ``cine_key_frames_found``, sent in this transaction so the stills exist if and only if the CineFrames do.
    A retried or redelivered job that finds the CineFrames saved saves nothing and sends nothing.
    """
    import numpy as np

    from classifier.signals import cine_key_frames_found

    with transaction.atomic():
        job = ClassificationJob.objects.select_for_update().get(id=job_id)
        if job.status != ClassificationJob.Status.RUNNING or CineFrames.objects.filter(job=job).exists():
            return job
        similarities = scores.similarities
        frames = CineFrames(
            job=job,
            frame_count=scores.frame_count,
            class_labels=list(job.model_version.class_labels),  # the order of the model's outputs
            probabilities=scores.probabilities.astype("<f2").tobytes(),
            flags=scores.flags.astype(np.uint8).tobytes(),
            similarities=b"" if similarities is None else similarities.astype("<f2").tobytes(),
            key_frames=[
                {"label": k.label, "frame_index": k.frame_index, "confidence": float(k.confidence)} for k in key_frames
            ],
            inference_ms=scores.inference_ms,
        )
        frames.full_clean()
        frames.save()
        job.status = ClassificationJob.Status.SUCCEEDED
        job.error = ""
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "error", "finished_at"])
        # Last, so that once the receivers have stored their files nothing here can still fail but the commit.
        cine_key_frames_found.send(sender=CineFrames, clip_id=job.image_id, key_frames=list(key_frames))
        return job


def prediction_save(*, job_id: int, result, heatmap_png: bytes | None = None) -> ClassificationJob:
    """Save a job's prediction and finish the job, exactly once. The heatmap is made on request
    (``heatmap_request``); ``heatmap_png`` stores one made already."""
    heatmap_path = ""
    if heatmap_png:
        heatmap_path = default_storage.save(f"heatmaps/job-{job_id}.png", ContentFile(heatmap_png))
    try:
        with transaction.atomic():
            job = ClassificationJob.objects.select_for_update().get(id=job_id)
            if job.status != ClassificationJob.Status.RUNNING or Prediction.objects.filter(job=job).exists():
                raise _AlreadyDone
            prediction = Prediction(
                job=job,
                label=result.label,
                confidence=min(max(result.confidence, 0.0), 1.0),
                probabilities=result.probabilities,
                needs_review=result.needs_review,
                similarity=result.similarity,
                inference_ms=result.inference_ms,
                runtime=result.runtime,
                heatmap=heatmap_path,
            )
            prediction.full_clean()
            prediction.save()
            job.status = ClassificationJob.Status.SUCCEEDED
            job.error = ""
            job.finished_at = timezone.now()
            job.save(update_fields=["status", "error", "finished_at"])
            webhook_deliveries_send(
                webhooks.webhook_prediction_event_record(prediction=prediction, event_type="prediction.created")
            )
            _plane_set_send(prediction, reviewed=False)
            return job
    except _AlreadyDone:
        if heatmap_path:
            default_storage.delete(heatmap_path)
        return ClassificationJob.objects.get(id=job_id)
    except BaseException:
        if heatmap_path:
            default_storage.delete(heatmap_path)
        raise


class _AlreadyDone(Exception):
    pass


# ---- Heatmaps, made when someone first asks -------------------------------------------------------
# Grad-CAM costs three times the prediction, so classification does not make it: the first request for an
# image's heatmap queues heatmap_render on the low-priority heatmaps queue, and later requests find it stored.


def _heatmap_send(prediction_id: int) -> None:
    from classifier.tasks import heatmap_render as heatmap_render_task

    try:
        heatmap_render_task.apply_async(kwargs={"prediction_id": prediction_id})
    except Exception:
        # The broker is down: the request goes stale and the next request for this heatmap queues it again.
        logger.exception("Could not queue the heatmap of prediction %s", prediction_id)


def _heatmap_request_stale_before():
    return timezone.now() - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)


@transaction.atomic
def heatmap_request(*, prediction: Prediction, requested_by) -> Prediction:
    """Ask for a prediction's heatmap: queued once, after commit; a request repeated while it is being made
    queues nothing more. A request older than the task time limit (its worker died, its message was lost) is
    queued again. Whoever may see the prediction may ask. The returned prediction has ``heatmap`` once made."""
    require_permission(
        requested_by,
        "classifier.view_prediction",
        clinic_id=prediction.job.image.study.patient.clinic_id,
        action="see heatmaps",
    )
    if prediction.heatmap:  # made already: nothing to lock
        return prediction
    prediction = Prediction.objects.select_for_update().get(id=prediction.id)
    if prediction.heatmap:
        return prediction
    requested_at = prediction.heatmap_requested_at
    if requested_at is not None and requested_at >= _heatmap_request_stale_before():
        return prediction
    prediction.heatmap_requested_at = timezone.now()
    prediction.skip_history_when_saving = True  # plumbing, not a change a clinician made or needs to see
    prediction.save(update_fields=["heatmap_requested_at"])
    transaction.on_commit(functools.partial(_heatmap_send, prediction.id))
    return prediction


class NoHeatmap(ApplicationError):
    http_status = 404
    code = "no_heatmap"


def image_heatmap_request(*, image, requested_by) -> Prediction:
    """``heatmap_request`` for an image's latest prediction (the pages' and the API's heatmap URL). A still (a
    key frame too) has one once classified; an image not classified yet, or a clip, has none (404)."""
    prediction = image_latest_prediction(image)
    if prediction is None or image.is_cine:
        raise NoHeatmap("This image has no heatmap: it is a cine clip or has no prediction yet.")
    return heatmap_request(prediction=prediction, requested_by=requested_by)


def heatmap_render(*, prediction_id: int) -> Prediction | None:
    """Make and store a prediction's Grad-CAM overlay, exactly once: a redelivered or repeated task that finds
    it stored does nothing, and of two renders that race, the second's file is deleted. The heatmaps queue's
    whole body. Key-frame stills are stills; a clip has no prediction and so no heatmap."""
    from classifier.ml.preprocessing import load_image
    from classifier.registry import keras_classifier_for

    prediction = Prediction.objects.select_related("job__image", "job__model_version").filter(id=prediction_id).first()
    if prediction is None or prediction.heatmap:
        return prediction
    classifier = keras_classifier_for(prediction.job.model_version)  # Grad-CAM needs gradients: Keras, not LiteRT
    with prediction.job.image.file.open("rb") as handle:
        image = load_image(handle.read())
    path = default_storage.save(f"heatmaps/prediction-{prediction.id}.png", ContentFile(classifier.heatmap_png(image)))
    try:
        with transaction.atomic():
            prediction = Prediction.objects.select_for_update().get(id=prediction_id)
            if prediction.heatmap:
                default_storage.delete(path)
                return prediction
            prediction.heatmap = path
            prediction.skip_history_when_saving = True
            prediction.save(update_fields=["heatmap"])
            return prediction
    except BaseException:
        default_storage.delete(path)
        raise


def job_retry_or_fail(*, job_id: int, reason: str) -> None:
    """A run of this job failed: back to the queue and sent again after the retry countdown, or failed for good
    once it has had CLASSIFY_MAX_RETRIES retries. The same rule for a job that failed in its own task and for
    one that failed inside another's batch (which has no task of its own to retry)."""
    with transaction.atomic():
        job = ClassificationJob.objects.select_for_update().filter(id=job_id).first()
        if job is None or job.is_finished:
            return
        if job.attempts > settings.CLASSIFY_MAX_RETRIES:
            logger.error("Job %s failed for good after %s attempts: %s", job_id, job.attempts, reason)
            job_mark_failed(job_id=job_id, reason=reason)
            return
        logger.warning("Job %s failed (attempt %s), retrying: %s", job_id, job.attempts, reason)
        job_mark_retrying(job_id=job_id, reason=reason)
        transaction.on_commit(functools.partial(_send, job_id, countdown=settings.CLASSIFY_RETRY_COUNTDOWN))


@transaction.atomic
def job_mark_retrying(*, job_id: int, reason: str) -> None:
    """A transient failure: back to QUEUED with the error kept, so the retry can claim it."""
    job = ClassificationJob.objects.select_for_update().filter(id=job_id).first()
    if job is None or job.is_finished:
        return
    job.status = ClassificationJob.Status.QUEUED
    job.error = reason[:2000]
    job.save(update_fields=["status", "error"])


@transaction.atomic
def job_mark_failed(*, job_id: int, reason: str) -> ClassificationJob | None:
    job = ClassificationJob.objects.select_for_update().filter(id=job_id).first()
    if job is None or job.status == ClassificationJob.Status.SUCCEEDED:
        return job
    job.status = ClassificationJob.Status.FAILED
    job.error = reason[:2000]
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "error", "finished_at"])
    webhook_deliveries_send(webhooks.webhook_job_failed_record(job=job))
    return job


# ---- Reviews ------------------------------------------------------------------------------------


def _review_fields(prediction: Prediction, *, label: str | None, not_plane_reason: str) -> tuple[str, str, str]:
    """(review_state, reviewed_label, not_plane_reason) for a review: a plane, or a reason it is none."""
    if (label is None or label == "") == (not not_plane_reason):
        raise ValidationError(
            {"label": "Give either a plane (label) or why the image is not a standard plane (not_plane_reason)."}
        )
    if not_plane_reason:
        if not_plane_reason not in Prediction.NotPlaneReason.values:
            reasons = ", ".join(Prediction.NotPlaneReason.values)
            raise ValidationError({"not_plane_reason": f"Choose one of: {reasons}."})
        return Prediction.ReviewState.NOT_A_PLANE, "", not_plane_reason
    if label not in PLANE_LABELS:
        raise ValidationError({"label": f"Choose one of: {', '.join(PLANE_LABELS)}."})
    state = Prediction.ReviewState.CONFIRMED if label == prediction.label else Prediction.ReviewState.CORRECTED
    return state, label, ""


@transaction.atomic
def prediction_review(
    *, prediction: Prediction, reviewed_by, label: str | None = None, not_plane_reason: str = "", comment: str = ""
) -> Prediction:
    """A clinician confirms the model's plane, corrects it to another, or says the image is not a standard
    fetal plane (with a reason); exactly one of ``label`` and ``not_plane_reason``. The model's answer stays as
    it was, and every review is kept in the prediction's history."""
    if not user_can_review(reviewed_by):
        raise PermissionDenied("Only clinicians can review predictions.")
    require_permission(
        reviewed_by,
        "classifier.review_prediction",
        clinic_id=prediction.job.image.study.patient.clinic_id,
        action="review predictions",
    )
    refuse_signed_study(prediction.job.image)
    prediction = Prediction.objects.select_for_update().get(id=prediction.id)
    state, reviewed_label, reason = _review_fields(prediction, label=label, not_plane_reason=not_plane_reason)
    prediction.review_state = state
    prediction.reviewed_label = reviewed_label
    prediction.not_plane_reason = reason
    prediction.reviewed_by = reviewed_by
    prediction.reviewed_at = timezone.now()
    prediction.review_comment = comment.strip()
    prediction._history_user = reviewed_by
    prediction._change_reason = f"review: {state}" + (f" ({reason})" if reason else "")
    prediction.full_clean()
    fields = ["review_state", "reviewed_label", "not_plane_reason", "reviewed_by", "reviewed_at", "review_comment"]
    prediction.save(update_fields=fields)
    webhook_deliveries_send(
        webhooks.webhook_prediction_event_record(prediction=prediction, event_type="prediction.reviewed")
    )
    _plane_set_send(prediction, reviewed=True)
    return prediction


def _plane_set_send(prediction: Prediction, *, reviewed: bool) -> None:
    """Tell the apps above (biometry measures brain planes) the image's plane now, inside this transaction. A
    receiver's failure is logged (by ``send_robust``), never raised: the prediction or review stands whatever a
    receiver does."""
    from classifier.signals import image_plane_set

    image_plane_set.send_robust(
        sender=Prediction, image_id=prediction.job.image_id, plane=prediction.final_label, reviewed=reviewed
    )


class ImageNotClassified(ApplicationError):
    http_status = 409
    code = "not_classified"


def image_review(
    *, image, reviewed_by, label: str | None = None, not_plane_reason: str = "", comment: str = ""
) -> Prediction:
    """Review the image's latest prediction (classifier.selectors); 409 while the image has none."""
    prediction = image_latest_prediction(image)
    if prediction is None:
        raise ImageNotClassified("This image has no prediction yet; wait for its job to finish.")
    return prediction_review(
        prediction=prediction,
        label=label,
        not_plane_reason=not_plane_reason,
        reviewed_by=reviewed_by,
        comment=comment,
    )
