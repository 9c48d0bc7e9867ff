"""A smaller run of bench/load_uploads.py against a live server and a real worker.

The full-size run (200 uploads from 20 clients, gunicorn and two worker processes) is
documented in docs/security.md with its figures; this one runs in every `make test`.
"""

import importlib.util
from pathlib import Path

import pytest
from django.conf import settings

from classifier.models import ClassificationJob, Prediction
from patients.models import UltrasoundImage

pytestmark = pytest.mark.e2e
SCRIPT = Path(settings.BASE_DIR) / "bench" / "load_uploads.py"


@pytest.fixture
def worker(transactional_db):
    from celery.contrib.testing.worker import start_worker

    from fetalsite.celery import app

    with app.connection_for_write() as connection:
        for queue in app.amqp.queues:  # this run's four queues (settings.celery_queues)
            connection.default_channel.queue_purge(queue)
    with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING") as worker:
        yield worker


def test_concurrent_uploads_lose_nothing_and_double_nothing(live_server, worker, active_model, integrator):
    spec = importlib.util.spec_from_file_location("load_uploads", SCRIPT)
    load_uploads = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(load_uploads)

    figures = load_uploads.run(live_server.url, "api_north", "correct-horse-battery", uploads=40, clients=8, wait_s=240)
    print(figures)
    assert figures["accepted_202"] == figures["distinct_image_ids"] == figures["images_in_study"] == 40
    assert figures["succeeded"] == figures["with_prediction"] == 40
    assert UltrasoundImage.objects.count() == ClassificationJob.objects.count() == Prediction.objects.count() == 40
