"""Separate queues (settings.TASK_QUEUES): a storm of webhook deliveries to a slow receiver does not hold back a
classification, and a worker started with -Q classify never runs a webhook task. Two real worker processes, one
per queue, as the Procfile runs them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from classifier.models import ClassificationJob, WebhookDelivery, WebhookEndpoint
from classifier.services import webhook_test_event_send
from classifier.webhooks import webhook_endpoint_save
from patients.services import image_upload
from tests.classifier.worker_processes import (
    json_log,
    private_broker,
    tasks_received,
    worker_env,
    worker_process,
)
from tests.conftest import wait_for
from tests.factories import UserFactory
from tests.images import png_bytes

pytestmark = pytest.mark.e2e
STORM = 50
CLASSIFY, WEBHOOK = "classifier.tasks.classify_image", "classifier.tasks.webhook_delivery_attempt"


class HeldReceiver:
    """A webhook receiver that holds every POST until ``release`` is set: deliveries stay pending meanwhile."""

    def __init__(self):
        self.release = threading.Event()
        self.held = 0
        self.answered = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                receiver.held += 1
                receiver.release.wait(timeout=300)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                receiver.answered += 1

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"


@contextmanager
def held_receiver() -> Iterator[HeldReceiver]:
    receiver = HeldReceiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()
        receiver.server.shutdown()
        receiver.server.server_close()


def test_a_webhook_storm_does_not_delay_a_classification(
    transactional_db, active_model, study, sonographer, settings, media_root, tmp_path
):
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    env = worker_env(
        media_root, WEBHOOK_ALLOW_HTTP="1", WEBHOOK_ALLOWED_NETWORKS="127.0.0.1/32", WEBHOOK_TIMEOUT_S="300"
    )
    classify_log, webhooks_log = tmp_path / "classify-worker.log", tmp_path / "webhooks-worker.log"
    clinic = study.patient.clinic
    admin = UserFactory(username="root", is_superuser=True)  # roles' groups are gone with transactional_db
    with (
        held_receiver() as receiver,
        private_broker(),
        worker_process(env, name="classify", log=classify_log, queues=["classify"]),
        worker_process(env, name="webhooks", log=webhooks_log, queues=["webhooks"]),
    ):
        endpoint = webhook_endpoint_save(endpoint=WebhookEndpoint(clinic=clinic, url=receiver.url, secret="s" * 32))
        for _ in range(STORM):
            webhook_test_event_send(endpoint=endpoint, requested_by=admin)
        wait_for(lambda: receiver.held == 1, timeout=60)  # the webhooks worker is busy with the first

        image = image_upload(study=study, data=png_bytes(seed=3), filename="a.png", uploaded_by=sonographer).image
        job = wait_for(
            lambda: ClassificationJob.objects.filter(image=image, finished_at__isnull=False).first(), timeout=120
        )

        assert job.status == ClassificationJob.Status.SUCCEEDED, job.error
        assert receiver.answered == 0 and receiver.held == 1
        undelivered = WebhookDelivery.objects.exclude(status=WebhookDelivery.Status.SUCCEEDED)
        # The storm, and the new prediction's own prediction.created event, still waiting on the webhooks queue.
        assert undelivered.count() == STORM + 1
        assert undelivered.filter(event_type="prediction.created", status=WebhookDelivery.Status.PENDING).exists()

        receiver.release.set()
        wait_for(lambda: receiver.answered == STORM + 1, timeout=120)
        wait_for(lambda: not undelivered.exists(), timeout=30)

    assert tasks_received(json_log(classify_log)) == {CLASSIFY}, "the classify worker runs predictions only"
    assert tasks_received(json_log(webhooks_log)) == {WEBHOOK}, "the webhooks worker runs deliveries only"
