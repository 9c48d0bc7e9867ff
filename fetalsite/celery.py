"""The Celery application: settings come from Django's CELERY_* names."""

import os

from celery import Celery
from celery.signals import setup_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fetalsite.settings.local")

app = Celery("fetalsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect
def _django_logging(**kwargs) -> None:
    """The worker and beat log through Django's LOGGING (JSON in production, with request and job ids) instead of
    Celery's own format: with a receiver connected here Celery configures no handler of its own. Python's warnings
    go through it too, so that a log collector reading JSON lines gets no stray text."""
    import logging
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)
    logging.captureWarnings(True)
