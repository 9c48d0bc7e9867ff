"""docs/api.md's webhook code runs: its ``verify`` and its receiver, taken from the blocks marked
``<!-- test: webhook-verify -->`` and ``<!-- test: webhook-receiver -->``, as a reader would paste them.

The receiver gets real deliveries from the app (registered, tested and rotated through the admin, sent by a
real Celery worker) and accepts them; it refuses a tampered body, a missing or garbled header and a stale
timestamp with 401, and answers a repeat with 2xx without handling it twice. ``verify`` itself returns False,
never raises, for whatever is missing or malformed."""

from __future__ import annotations

import http.client
import io
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from classifier.models import WebhookDelivery, WebhookEndpoint
from classifier.webhooks import webhook_delivery_attempt, webhook_endpoint_save, webhook_signature
from tests.api.conftest import classify
from tests.api.docs_code import docs_namespace, docs_verify
from tests.api.webhook_receiver import Receiver
from tests.conftest import wait_for

ENDPOINTS = "/admin/classifier/webhookendpoint/"
SECRET_ON_PAGE = re.compile(rb'<code id="webhook-secret">(\w+)</code>')


def _admin_secret(response) -> str:
    """The secret as the page after adding an endpoint, or rotating its secret, shows it."""
    assert response.status_code == 200, response.status_code
    match = SECRET_ON_PAGE.search(response.content)
    assert match, "the page shows no secret"
    return match.group(1).decode()


def _post(port: int, body: bytes, headers: dict) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", "/", body=body, headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.fixture
def docs_receiver(monkeypatch) -> Iterator[SimpleNamespace]:
    """The docs' receiver on a free port, started once its secret is known (``start(secret)``), as a reader
    starts it with WEBHOOK_SECRET set; it records what it handled and the raw requests it got."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    state = SimpleNamespace(port=server.server_port, url=f"http://127.0.0.1:{server.server_port}/", raw=[])

    def start(secret: str) -> dict:
        monkeypatch.setenv("WEBHOOK_SECRET", secret)
        namespace = docs_namespace("webhook-verify", "webhook-receiver")
        state.handled = []
        namespace["handle"] = state.handled.append  # the reader's own code goes there

        class Recording(namespace["Receiver"]):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                state.raw.append({"headers": dict(self.headers), "body": body})
                self.rfile = io.BytesIO(body)
                super().do_POST()

            def log_message(self, *args):
                pass

        server.RequestHandlerClass = Recording
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return namespace

    state.start = start
    yield state
    server.shutdown()
    server.server_close()


def _select(action: str, endpoint_id: int) -> dict:
    return {"action": action, "_selected_action": [endpoint_id], "index": 0, "select_across": 0}


@pytest.mark.e2e
class TestDocsReceiverWithTheRealWorker:
    def test_accepts_real_deliveries_and_refuses_tampered_ones(
        self, celery_worker, docs_receiver, admin_client, north, settings
    ):
        settings.WEBHOOK_ALLOW_HTTP = True
        settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
        added = admin_client.post(
            f"{ENDPOINTS}add/",
            {"clinic": north.id, "url": docs_receiver.url, "events": ["prediction.created"], "is_active": "on"},
        )
        secret = _admin_secret(added)
        endpoint = WebhookEndpoint.objects.get()
        namespace = docs_receiver.start(secret)

        admin_client.post(ENDPOINTS, _select("send_test_event", endpoint.id))
        wait_for(lambda: WebhookDelivery.objects.filter(status="SUCCEEDED").exists(), timeout=30)

        delivered = WebhookDelivery.objects.get()
        real = docs_receiver.raw[0]
        assert (delivered.event_type, delivered.attempts, delivered.last_response_code) == ("webhook.test", 1, 204)
        assert [event["type"] for event in docs_receiver.handled] == ["webhook.test"]
        assert namespace["verify"](secret, real["headers"], real["body"])

        body, headers = real["body"], real["headers"]
        stale = str(int(time.time()) - 3600)
        without = {
            name: {k: v for k, v in headers.items() if k != name} for name in ("X-Fetal-Signature", "X-Fetal-Timestamp")
        }
        answers = {
            "repeat": _post(docs_receiver.port, body, headers),
            "tampered body": _post(docs_receiver.port, body.replace(b"test event", b"test evenT"), headers),
            "no signature": _post(docs_receiver.port, body, without["X-Fetal-Signature"]),
            "no timestamp": _post(docs_receiver.port, body, without["X-Fetal-Timestamp"]),
            "garbled timestamp": _post(docs_receiver.port, body, {**headers, "X-Fetal-Timestamp": "17x"}),
            "stale timestamp": _post(
                docs_receiver.port,
                body,
                {
                    **headers,
                    "X-Fetal-Timestamp": stale,
                    "X-Fetal-Signature": webhook_signature(secret=secret, timestamp=stale, body=body),
                },
            ),
        }

        assert answers == {
            "repeat": 204,
            "tampered body": 401,
            "no signature": 401,
            "no timestamp": 401,
            "garbled timestamp": 401,
            "stale timestamp": 401,
        }
        assert len(docs_receiver.handled) == 1, "a repeat is answered, not handled again"

    def test_after_a_rotation_the_old_secret_fails_and_the_retry_with_the_new_one_succeeds(
        self, celery_worker, docs_receiver, admin_client, north, settings
    ):
        settings.WEBHOOK_ALLOW_HTTP = True
        settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
        settings.WEBHOOK_RETRY_BASE_S = 0.5
        added = admin_client.post(
            f"{ENDPOINTS}add/",
            {"clinic": north.id, "url": docs_receiver.url, "events": ["job.failed"], "is_active": "on"},
        )
        old_secret = _admin_secret(added)
        endpoint = WebhookEndpoint.objects.get()
        namespace = docs_receiver.start(old_secret)

        new_secret = _admin_secret(admin_client.post(ENDPOINTS, _select("rotate_secret", endpoint.id)))
        admin_client.post(ENDPOINTS, _select("send_test_event", endpoint.id))
        wait_for(lambda: WebhookDelivery.objects.filter(last_response_code=401).exists(), timeout=30)
        namespace["SECRET"] = new_secret  # the receiver is given the new secret
        wait_for(lambda: WebhookDelivery.objects.filter(status="SUCCEEDED").exists(), timeout=30)

        delivery = WebhookDelivery.objects.get()
        assert new_secret != old_secret
        assert (delivery.attempts, delivery.last_response_code) == (2, 204)
        assert [event["type"] for event in docs_receiver.handled] == ["webhook.test"]


class TestDocsVerify:
    def test_true_for_a_real_delivery_false_for_anything_missing_or_garbled(self, north, image, settings):
        settings.WEBHOOK_ALLOW_HTTP = True
        settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
        receiver = Receiver()
        receiver.thread.start()
        try:
            endpoint = webhook_endpoint_save(endpoint=WebhookEndpoint(clinic=north, url=receiver.url))
            classify(image)
            webhook_delivery_attempt(delivery_id=WebhookDelivery.objects.get().id)
        finally:
            receiver.server.shutdown()
            receiver.server.server_close()
        verify, secret = docs_verify(), endpoint.secret
        body, headers = receiver.received[0]["body"], receiver.received[0]["headers"]
        timestamp, signature = headers["X-Fetal-Timestamp"], headers["X-Fetal-Signature"]

        garbled = [
            {},
            {"X-Fetal-Timestamp": timestamp},
            {"X-Fetal-Signature": signature},
            {"X-Fetal-Timestamp": "", "X-Fetal-Signature": signature},
            {"X-Fetal-Timestamp": "-1", "X-Fetal-Signature": signature},
            {"X-Fetal-Timestamp": "١٢٣", "X-Fetal-Signature": signature},  # digits, but not ASCII ones
            {"X-Fetal-Timestamp": timestamp, "X-Fetal-Signature": "sha256=é"},
            {"X-Fetal-Timestamp": timestamp, "X-Fetal-Signature": signature.upper()},
        ]

        assert verify(secret, headers, body)
        assert not verify("another-secret", headers, body)
        assert [verify(secret, garbled_headers, body) for garbled_headers in garbled] == [False] * len(garbled)
