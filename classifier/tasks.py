"""Celery adapters: ids in, one service call, retries for transient failures."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

logger = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True, max_retries=None)
def classify_image(self, *, job_id: int) -> None:
    from classifier.services import classification_job_run, job_mark_failed, job_mark_retrying

    try:
        classification_job_run(job_id=job_id)
    except Exception as error:
        reason = f"{error.__class__.__name__}: {error}"
        if self.request.retries < settings.CLASSIFY_MAX_RETRIES:
            logger.warning("Job %s failed (attempt %s), retrying: %s", job_id, self.request.retries + 1, reason)
            job_mark_retrying(job_id=job_id, reason=reason)
            raise self.retry(exc=error, countdown=settings.CLASSIFY_RETRY_COUNTDOWN) from error
        logger.exception("Job %s failed for good", job_id)
        job_mark_failed(job_id=job_id, reason=reason)


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
