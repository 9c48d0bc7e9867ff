"""Celery adapters: ids in, one service call, retries for transient failures."""

from __future__ import annotations

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def classify_image(*, job_id: int) -> None:
    """Classify the job's image, with the queued stills it can batch with (MICRO_BATCH_MAX)."""
    from classifier.services import classification_job_run, job_retry_or_fail

    try:
        classification_job_run(job_id=job_id)
    except Exception as error:
        # Counted by the job's attempts, not this message's retries: a job may have failed in another's batch.
        logger.warning("Job %s failed", job_id, exc_info=True)
        job_retry_or_fail(job_id=job_id, reason=f"{error.__class__.__name__}: {error}")


@shared_task(acks_late=True)
def heatmap_render(*, prediction_id: int) -> None:
    """The heatmaps queue (low priority): Grad-CAM for a prediction someone asked to see. A failure leaves the
    request to go stale; the next request after the task time limit queues it again."""
    from classifier.services import heatmap_render as render

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
    from classifier.webhooks import webhook_delivery_attempt as attempt

    retry_in = attempt(delivery_id=delivery_id)
    if retry_in is not None:
        raise self.retry(countdown=retry_in)
