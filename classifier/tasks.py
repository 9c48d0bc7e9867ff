"""Celery adapters: ids in, one service call, retries for transient failures."""

from __future__ import annotations

import logging

from celery import shared_task

from fetalsite.core.request_id import request_id_scope

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def classify_image(*, job_id: int) -> None:
    """Classify the job's image, with the queued stills it can batch with (MICRO_BATCH_MAX)."""
    from classifier.selectors import job_request_id
    from classifier.services import classification_job_run, job_retry_or_fail

    # Under the upload's request id: the job's log lines and the webhooks it records are found by that one value.
    with request_id_scope(job_request_id(job_id=job_id), job_id=job_id):
        try:
            job = classification_job_run(job_id=job_id)
        except Exception as error:
            # Counted by the job's attempts, not this message's retries: a job may have failed in another's batch.
            logger.warning("Job %s failed", job_id, exc_info=True)
            job_retry_or_fail(job_id=job_id, reason=f"{error.__class__.__name__}: {error}")
            return
        logger.info("Job %s: %s", job_id, job.status if job is not None else "nothing to do (done or taken)")


@shared_task(acks_late=True)
def heatmap_render(*, prediction_id: int) -> None:
    """The heatmaps queue (low priority): Grad-CAM for a prediction someone asked to see. A failure leaves the
    request to go stale; the next request after the task time limit queues it again."""
    from classifier.selectors import prediction_job_request_id
    from classifier.services import heatmap_render as render

    job_id, request_id = prediction_job_request_id(prediction_id=prediction_id)
    with request_id_scope(request_id, job_id=job_id):  # logged as part of the job whose image it explains
        render(prediction_id=prediction_id)


@shared_task
def requeue_stale_jobs() -> None:
    """Beat: resend jobs and webhook deliveries that never reached the broker, were lost, or whose worker died."""
    from classifier.services import jobs_requeue_stale, webhook_deliveries_requeue_stale

    jobs_requeue_stale()
    webhook_deliveries_requeue_stale()


@shared_task(bind=True, acks_late=True, max_retries=None)
def webhook_delivery_attempt(self, *, delivery_id: int) -> None:
    """POST one webhook delivery; on failure try again later with exponential backoff."""
    from classifier.selectors import webhook_delivery_request_id
    from classifier.webhooks import webhook_delivery_attempt as attempt

    with request_id_scope(webhook_delivery_request_id(delivery_id=delivery_id)):
        retry_in = attempt(delivery_id=delivery_id)
        logger.info("Webhook delivery %s: %s", delivery_id, "done" if retry_in is None else f"again in {retry_in:.0f}s")
    if retry_in is not None:
        raise self.retry(countdown=retry_in)
