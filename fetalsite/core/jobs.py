"""What the job sweepers share: which jobs to send again.

Classification jobs (classifier) and measurement jobs (biometry) live the same life: QUEUED with the Celery task id
they were sent under, RUNNING from ``started_at``, then finished. Celery beat sends a job again when the broker may
never have had it or lost it; sending twice is safe, because a worker claims a job under a row lock.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone


def running_abandoned_before() -> datetime:
    """A job still RUNNING since before this has outlived the task time limit: its worker died."""
    return timezone.now() - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)


def stale_job_ids(jobs: QuerySet) -> list[int]:
    """Ids of the jobs to send again: queued but never sent (JOB_REQUEUE_UNSENT_AFTER_S), queued too long
    (JOB_REQUEUE_WAITING_AFTER_S), or running past the task time limit."""
    now = timezone.now()
    never_sent = jobs.filter(
        status="QUEUED", celery_task_id="", queued_at__lt=now - timedelta(seconds=settings.JOB_REQUEUE_UNSENT_AFTER_S)
    )
    waiting = jobs.filter(status="QUEUED", queued_at__lt=now - timedelta(seconds=settings.JOB_REQUEUE_WAITING_AFTER_S))
    abandoned = jobs.filter(status="RUNNING", started_at__lt=running_abandoned_before())
    return sorted(set((never_sent | waiting | abandoned).values_list("id", flat=True)))
