"""Webhooks: signed POSTs to a small HTTP server on 127.0.0.1, retries with backoff, the record
of each delivery, and the full round trip through the real worker and tiny model."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from classifier import services as classifier_services
from classifier.models import WebhookDelivery, WebhookEndpoint
from classifier.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    webhook_delivery_attempt,
    webhook_endpoint_save,
    webhook_signature_verify,
)
from tests.api.conftest import classify, upload
from tests.conftest import wait_for
from tests.images import png_bytes

SECRET = "test-webhook-secret-0123456789abcdef"


class Receiver:
    """A tiny HTTP server that records each POST and answers with the next queued status."""

    def __init__(self, statuses=()):
        self.statuses = list(statuses)
        self.received: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append({"headers": dict(self.headers), "body": body})
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/fetal"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def events(self) -> list[dict]:
        return [json.loads(r["body"]) for r in self.received]

    def verified(self, request: dict) -> bool:
        headers = request["headers"]
        return webhook_signature_verify(
            secret=SECRET,
            timestamp=headers[TIMESTAMP_HEADER],
            body=request["body"],
            signature=headers[SIGNATURE_HEADER],
        )


@pytest.fixture
def receiver():
    receiver = Receiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture
def endpoint(north, receiver, settings):
    settings.WEBHOOK_ALLOW_HTTP = True  # plain http to 127.0.0.1, for the test only
    return webhook_endpoint_save(endpoint=WebhookEndpoint(clinic=north, url=receiver.url, secret=SECRET))


class TestWebhookDelivery:
    def test_prediction_created_is_posted_signed(self, endpoint, receiver, image, django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks() as callbacks:
            classify(image, label="fetal_abdomen")
        delivery = WebhookDelivery.objects.get()

        retry_in = webhook_delivery_attempt(delivery_id=delivery.id)

        assert callbacks, "the delivery task is queued after commit"
        assert retry_in is None
        request = receiver.received[0]
        assert receiver.verified(request)
        assert request["headers"]["X-Fetal-Event"] == "prediction.created"
        event = receiver.events()[0]
        assert event["type"] == "prediction.created"
        assert event["data"]["image"] == image.id
        assert event["data"]["prediction"]["label"] == "fetal_abdomen"
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.last_response_code) == ("SUCCEEDED", 1, 200)

    def test_a_tampered_body_or_old_timestamp_fails_verification(self, endpoint, receiver, image):
        classify(image)
        webhook_delivery_attempt(delivery_id=WebhookDelivery.objects.get().id)
        request = receiver.received[0]
        headers = request["headers"]

        tampered = {**request, "body": request["body"].replace(b"fetal_brain", b"fetal_femur")}
        old = webhook_signature_verify(
            secret=SECRET,
            timestamp=str(int(headers[TIMESTAMP_HEADER]) - 3600),
            body=request["body"],
            signature=headers[SIGNATURE_HEADER],
        )

        assert not receiver.verified(tampered)
        assert not old

    def test_failures_retry_with_growing_delays_then_succeed(self, endpoint, receiver, image, settings):
        settings.WEBHOOK_RETRY_BASE_S = 10
        receiver.statuses = [500, 503]
        classify(image)
        delivery = WebhookDelivery.objects.get()

        delays = [webhook_delivery_attempt(delivery_id=delivery.id) for _ in range(3)]

        assert delays == [10, 20, None]
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.last_response_code) == ("SUCCEEDED", 3, 200)
        assert delivery.delivered_at is not None

    def test_gives_up_after_the_last_attempt(self, endpoint, receiver, image, settings):
        settings.WEBHOOK_MAX_ATTEMPTS = 2
        receiver.statuses = [500, 500]
        classify(image)
        delivery = WebhookDelivery.objects.get()

        webhook_delivery_attempt(delivery_id=delivery.id)
        last = webhook_delivery_attempt(delivery_id=delivery.id)
        again = webhook_delivery_attempt(delivery_id=delivery.id)

        delivery.refresh_from_db()
        assert last is None and again is None
        assert (delivery.status, delivery.attempts, delivery.last_response_code) == ("FAILED", 2, 500)
        assert len(receiver.received) == 2

    def test_unreachable_receiver_is_recorded(self, north, image, settings):
        settings.WEBHOOK_ALLOW_HTTP = True
        webhook_endpoint_save(endpoint=WebhookEndpoint(clinic=north, url="http://127.0.0.1:9/", secret=SECRET))
        classify(image)
        delivery = WebhookDelivery.objects.get()

        webhook_delivery_attempt(delivery_id=delivery.id)

        delivery.refresh_from_db()
        assert delivery.status == "RETRYING"
        assert delivery.last_response_code is None
        assert delivery.last_error

    def test_job_failed_and_review_events(self, endpoint, receiver, study, model_version, clinician_client):
        failing = upload(study, seed=1)
        classifier_services.job_mark_failed(job_id=failing.jobs.get().id, reason="RuntimeError: boom")
        reviewed = upload(study, seed=2)
        classify(reviewed)
        clinician_client.post(f"/api/v1/images/{reviewed.id}/review/", {"label": "fetal_femur"})

        for delivery in WebhookDelivery.objects.order_by("id"):
            webhook_delivery_attempt(delivery_id=delivery.id)

        events = receiver.events()
        assert [e["type"] for e in events] == ["job.failed", "prediction.created", "prediction.reviewed"]
        assert events[0]["data"]["job"]["error"] == "RuntimeError: boom"
        assert events[2]["data"]["prediction"]["reviewed_by"] == "clin_north"
        assert all(receiver.verified(r) for r in receiver.received)

    def test_only_the_images_clinic_and_subscribed_events(self, endpoint, receiver, south, image, settings):
        webhook_endpoint_save(endpoint=WebhookEndpoint(clinic=south, url=receiver.url, secret="south-secret"))
        endpoint.events = ["job.failed"]
        webhook_endpoint_save(endpoint=endpoint)

        classify(image)

        assert WebhookDelivery.objects.count() == 0


class TestWebhookEndpoint:
    def test_requires_https_unless_allowed(self, north, settings):
        settings.DEBUG = False
        settings.WEBHOOK_ALLOW_HTTP = False

        with pytest.raises(ValidationError) as error:
            webhook_endpoint_save(endpoint=WebhookEndpoint(clinic=north, url="http://example.org/hook"))
        endpoint = webhook_endpoint_save(endpoint=WebhookEndpoint(clinic=north, url="https://example.org/hook"))

        assert "url" in error.value.message_dict
        assert len(endpoint.secret) == 64

    def test_rejects_unknown_events(self, north):
        with pytest.raises(ValidationError):
            webhook_endpoint_save(
                endpoint=WebhookEndpoint(clinic=north, url="https://example.org/hook", events=["image.deleted"])
            )

    def test_deliveries_are_visible_in_the_admin(self, endpoint, image, admin_client):
        classify(image)

        page = admin_client.get("/admin/classifier/webhookdelivery/")
        endpoints = admin_client.get("/admin/classifier/webhookendpoint/")

        assert page.status_code == 200
        assert b"prediction.created" in page.content
        assert endpoints.status_code == 200


@pytest.mark.e2e
class TestWebhookRoundTrip:
    def test_upload_to_signed_events_through_the_real_worker(
        self, celery_worker, active_model, study, api_client, clinician_client, receiver, settings
    ):
        settings.WEBHOOK_ALLOW_HTTP = True
        settings.WEBHOOK_RETRY_BASE_S = 0.2
        receiver.statuses = [503]  # the first delivery fails once and is retried by the worker
        webhook_endpoint_save(endpoint=WebhookEndpoint(clinic=study.patient.clinic, url=receiver.url, secret=SECRET))

        uploaded = api_client.post(
            f"/api/v1/studies/{study.id}/images/",
            {"file": SimpleUploadedFile("head.png", png_bytes(seed=11), content_type="image/png")},
            format="multipart",
        ).json()
        wait_for(lambda: WebhookDelivery.objects.filter(status="SUCCEEDED").exists(), timeout=90)
        clinician_client.post(f"/api/v1/images/{uploaded['id']}/review/", {"label": "fetal_brain"})
        wait_for(lambda: WebhookDelivery.objects.filter(status="SUCCEEDED").count() == 2, timeout=60)

        events = receiver.events()
        assert [e["type"] for e in events] == ["prediction.created", "prediction.created", "prediction.reviewed"]
        assert events[0]["id"] == events[1]["id"], "a retry carries the same event id"
        assert all(receiver.verified(r) for r in receiver.received)
        created = WebhookDelivery.objects.get(event_type="prediction.created")
        assert (created.attempts, created.last_response_code) == (2, 200)
        prediction = api_client.get(f"/api/v1/images/{uploaded['id']}/").json()["prediction"]
        assert events[0]["data"]["prediction"]["id"] == prediction["id"]


class TestWebhookSweeper:
    def test_a_delivery_that_never_reached_the_broker_is_resent_and_delivered(
        self, endpoint, receiver, image, settings, django_capture_on_commit_callbacks
    ):
        from datetime import timedelta

        from django.utils import timezone

        from classifier.webhooks import webhook_deliveries_requeue_stale

        classify(image, label="fetal_brain")  # its delivery task is never sent: on_commit does not run here
        delivery = WebhookDelivery.objects.get()
        assert webhook_deliveries_requeue_stale() == []  # not stale yet

        WebhookDelivery.objects.filter(id=delivery.id).update(
            created_at=timezone.now() - timedelta(seconds=settings.WEBHOOK_REQUEUE_AFTER_S + 1)
        )
        with django_capture_on_commit_callbacks() as callbacks:
            assert webhook_deliveries_requeue_stale() == [delivery.id]
        assert len(callbacks) == 1
        webhook_delivery_attempt(delivery_id=delivery.id)  # what the resent task runs
        delivery.refresh_from_db()
        assert delivery.status == "SUCCEEDED" and receiver.verified(receiver.received[0])
        assert webhook_deliveries_requeue_stale() == []  # delivered: nothing more to send
