"""Celery adapters: ids in, one service call, retries for transient failures."""

from __future__ import annotations

import logging

from celery import shared_task

from fetalsite.core.request_id import request_id_scope

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def measure_image(*, job_id: int) -> None:
    """Measure the job's image (the "measure" queue): the head's ellipse, HC, BPD and OFD."""
    from biometry.selectors import measurement_job_request_id
    from biometry.services import measurement_job_retry_or_fail, measurement_run

    # Under the request id the job was queued with (its upload's or its reviewer's), like a classification job.
    with request_id_scope(measurement_job_request_id(job_id=job_id), job_id=job_id):
        try:
            job = measurement_run(job_id=job_id)
        except Exception as error:
            logger.warning("Measurement job %s failed", job_id, exc_info=True)
            measurement_job_retry_or_fail(job_id=job_id, reason=f"{error.__class__.__name__}: {error}")
            return
        logger.info("Measurement job %s: %s", job_id, job.status if job is not None else "nothing to do")


@shared_task
def requeue_stale_measurement_jobs() -> None:
    """Beat (housekeeping queue): resend measurement jobs that never reached the broker, were lost, or whose
    worker died."""
    from biometry.services import measurement_jobs_requeue_stale

    measurement_jobs_requeue_stale()
