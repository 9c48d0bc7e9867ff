"""Webhooks: signed POSTs to a small HTTP server on 127.0.0.1, retries with backoff, the record
of each delivery, and the full round trip through the real worker and tiny model."""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from classifier import services as classifier_services
from classifier.models import WebhookDelivery, WebhookEndpoint
from classifier.webhook_targets import (
    CONNECTION_FAILED_MESSAGE,
    REFUSED_TARGET_MESSAGE,
    WebhookTarget,
    webhook_target_post,
)
from classifier.webhooks import webhook_delivery_attempt, webhook_endpoint_save
from tests.api.conftest import classify, upload
from tests.api.docs_code import docs_verify
from tests.api.webhook_receiver import Receiver as BaseReceiver
from tests.api.webhook_receiver import serving
from tests.conftest import wait_for
from tests.images import png_bytes

SECRET = "test-webhook-secret-0123456789abcdef"
verify = docs_verify()  # docs/api.md's own: every delivery here is checked with what a receiver copies
# Public addresses given as literals, so registering needs no DNS (tests run offline); nothing is sent to them.
PUBLIC_IPV4 = "93.184.215.14"
PUBLIC_IPV6 = "[2606:4700:4700::1111]"


class Receiver(BaseReceiver):
    def verified(self, request: dict) -> bool:
        return verify(SECRET, request["headers"], request["body"])


@pytest.fixture
def receiver():
    with serving(Receiver()) as receiver:
        yield receiver


@pytest.fixture
def tls_receiver(tmp_path) -> Iterator[SimpleNamespace]:
    """An HTTPS receiver on 127.0.0.1 with a certificate for hooks.test; records SNI names and Host headers."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make a test certificate")
    certificate, key = tmp_path / "hooks.test.pem", tmp_path / "hooks.test.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        + ["-keyout", key, "-out", certificate, "-days", "1", "-subj", "/CN=hooks.test"]
        + ["-addext", "subjectAltName=DNS:hooks.test", "-addext", "basicConstraints=critical,CA:TRUE"],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    received = SimpleNamespace(certificate=certificate, server_names=[], hosts=[])
    context.sni_callback = lambda connection, name, _context: received.server_names.append(name)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            received.hosts.append(self.headers["Host"])
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    received.port = server.server_port
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield received
    server.shutdown()
    server.server_close()


@contextlib.contextmanager
def _open_port(behaviour: str) -> Iterator[int]:
    """A listening port on 127.0.0.1 that never answers HTTP: it stays silent, hangs up, or sends an SSH banner."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve_one() -> None:
        try:
            connection, _ = listener.accept()
        except OSError:
            return  # the test ended first
        with connection:
            if behaviour == "speaks_another_protocol":
                connection.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")

    if behaviour != "silent":  # silent: the kernel completes the handshake, nobody reads
        threading.Thread(target=serve_one, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes a pending accept()
        listener.close()


@contextlib.contextmanager
def _closed_port() -> Iterator[int]:
    """A port bound but not listening: connecting is refused, and nothing else can take the port meanwhile."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    try:
        yield holder.getsockname()[1]
    finally:
        holder.close()


@pytest.fixture
def endpoint(north, receiver, settings):
    settings.WEBHOOK_ALLOW_HTTP = True  # plain http to 127.0.0.1, for the test only
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]  # the receiver's address, an exception for the test
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
        assert request["headers"]["X-Fetal-Event-Version"] == "2"
        event = receiver.events()[0]
        assert (event["type"], event["version"]) == ("prediction.created", 2)
        assert event["data"]["image"] == image.id
        assert event["data"]["prediction"]["label"] == "fetal_abdomen"
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.last_response_code) == ("SUCCEEDED", 1, 200)

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
        settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
        webhook_endpoint_save(endpoint=WebhookEndpoint(clinic=north, url="http://127.0.0.1:9/", secret=SECRET))
        classify(image)
        delivery = WebhookDelivery.objects.get()

        webhook_delivery_attempt(delivery_id=delivery.id)

        delivery.refresh_from_db()
        assert delivery.status == "RETRYING"
        assert delivery.last_response_code is None
        assert delivery.last_error == CONNECTION_FAILED_MESSAGE

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
            webhook_endpoint_save(endpoint=WebhookEndpoint(clinic=north, url=f"http://{PUBLIC_IPV4}/hook"))
        endpoint = webhook_endpoint_save(endpoint=WebhookEndpoint(clinic=north, url=f"https://{PUBLIC_IPV4}/hook"))

        assert "url" in error.value.message_dict
        assert len(endpoint.secret) == 64

    @pytest.mark.parametrize("events", [["image.deleted"], ["webhook.test"], []])
    def test_rejects_unknown_or_unsubscribable_events(self, north, events):
        with pytest.raises(ValidationError) as error:
            webhook_endpoint_save(
                endpoint=WebhookEndpoint(clinic=north, url=f"https://{PUBLIC_IPV4}/hook", events=events)
            )

        assert "events" in error.value.message_dict

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
        settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
        settings.WEBHOOK_RETRY_BASE_S = 0.2
        receiver.statuses = [503]  # the first delivery fails once and is retried by the worker
        # The prediction's events only: a brain plane's head measurement sends events of its own, in their own time
        # (tests/biometry/test_webhooks.py).
        events = ["prediction.created", "prediction.reviewed"]
        endpoint = WebhookEndpoint(clinic=study.patient.clinic, url=receiver.url, secret=SECRET, events=events)
        webhook_endpoint_save(endpoint=endpoint)

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

        from classifier.services import webhook_deliveries_requeue_stale

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


# ---- Where webhooks may go (no SSRF: not this machine, not private networks, not a port scanner) ----

REFUSED_HOSTS = [
    pytest.param("127.0.0.1", id="loopback"),
    pytest.param("127.8.9.10", id="loopback-range"),
    pytest.param("[::1]", id="ipv6-loopback"),
    pytest.param("0.0.0.0", id="unspecified"),  # noqa: S104 (refused here, never bound)
    pytest.param("[::]", id="ipv6-unspecified"),
    pytest.param("10.1.2.3", id="rfc1918-10"),
    pytest.param("172.16.5.4", id="rfc1918-172"),
    pytest.param("192.168.1.1", id="rfc1918-192"),
    pytest.param("100.64.0.1", id="cgnat"),
    pytest.param("169.254.169.254", id="link-local-metadata"),
    pytest.param("[fe80::1]", id="ipv6-link-local"),
    pytest.param("[fc00::1]", id="unique-local-fc"),
    pytest.param("[fd12:3456:789a::1]", id="unique-local-fd"),
    pytest.param("[fec0::1]", id="ipv6-site-local"),
    pytest.param("224.0.0.1", id="multicast"),
    pytest.param("[ff02::1]", id="ipv6-multicast"),
    pytest.param("240.0.0.1", id="reserved"),
    pytest.param("255.255.255.255", id="broadcast"),
    pytest.param("198.18.0.1", id="benchmarking"),
    pytest.param("192.0.2.1", id="documentation"),
    pytest.param("[::ffff:127.0.0.1]", id="ipv4-mapped-loopback"),
    pytest.param("[::ffff:10.0.0.1]", id="ipv4-mapped-private"),
    pytest.param("[::ffff:169.254.169.254]", id="ipv4-mapped-metadata"),
    pytest.param("[::127.0.0.1]", id="ipv4-compatible-loopback"),
    pytest.param("[64:ff9b::7f00:1]", id="nat64-loopback"),
    pytest.param("[2002:a00:1::1]", id="6to4-private"),
    pytest.param("localhost", id="name-resolving-to-loopback"),
]


def _register(clinic, url: str) -> WebhookEndpoint:
    return webhook_endpoint_save(endpoint=WebhookEndpoint(clinic=clinic, url=url, secret=SECRET))


class TestWebhookTargetRegistration:
    @pytest.mark.parametrize("host", REFUSED_HOSTS)
    def test_refuses_internal_addresses(self, north, settings, host):
        settings.WEBHOOK_ALLOW_HTTP = True

        with pytest.raises(ValidationError) as error:
            _register(north, f"http://{host}:9/hook")

        assert error.value.message_dict == {"url": [REFUSED_TARGET_MESSAGE]}
        assert not WebhookEndpoint.objects.exists()

    def test_refuses_a_name_that_does_not_resolve_with_the_same_message(self, north):
        with pytest.raises(ValidationError) as error:
            _register(north, "https://no-such-host.invalid/hook")

        assert error.value.message_dict == {"url": [REFUSED_TARGET_MESSAGE]}

    def test_accepts_public_addresses(self, north):
        first = _register(north, f"https://{PUBLIC_IPV4}/hook")
        second = _register(north, f"https://{PUBLIC_IPV6}:8443/hook")

        assert WebhookEndpoint.objects.filter(id__in=[first.id, second.id]).count() == 2

    def test_accepts_an_allow_listed_network_only(self, north, settings):
        settings.WEBHOOK_ALLOW_HTTP = True
        settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]

        loopback = _register(north, "http://127.0.0.1:9/hook")
        mapped = _register(north, "http://[::ffff:127.0.0.1]:9/hook")
        by_name = _register(north, "http://localhost:9/hook")
        with pytest.raises(ValidationError):
            _register(north, "http://10.0.0.1:9/hook")

        assert {e.id for e in WebhookEndpoint.objects.all()} == {loopback.id, mapped.id, by_name.id}

    def test_a_malformed_allow_list_is_a_configuration_error(self, north, settings):
        settings.WEBHOOK_ALLOWED_NETWORKS = ["10.0.0.0/33"]

        with pytest.raises(ImproperlyConfigured):
            _register(north, "https://10.0.0.1/hook")

    def test_the_admin_form_shows_the_refusal_and_saves_nothing(self, north, admin_client, settings):
        settings.WEBHOOK_ALLOW_HTTP = True
        form = {
            "clinic": north.id,
            "url": "http://[::1]:9/",
            "events": ["prediction.created"],
            "is_active": "on",
            "description": "",
        }

        response = admin_client.post("/admin/classifier/webhookendpoint/add/", form)

        assert response.status_code == 200
        assert response.context["adminform"].form.errors["url"] == [REFUSED_TARGET_MESSAGE]
        assert not WebhookEndpoint.objects.exists()


class TestWebhookTargetDelivery:
    def test_a_host_no_longer_allowed_is_refused_at_delivery(self, endpoint, receiver, image, settings):
        classify(image)
        delivery = WebhookDelivery.objects.get()
        settings.WEBHOOK_ALLOWED_NETWORKS = []  # what DNS changing to a private address looks like at delivery

        webhook_delivery_attempt(delivery_id=delivery.id)

        delivery.refresh_from_db()
        assert receiver.received == []
        assert (delivery.status, delivery.last_response_code, delivery.last_error) == (
            "RETRYING",
            None,
            REFUSED_TARGET_MESSAGE,
        )

    def test_connects_to_the_vetted_address_and_sends_the_names_host_header(self, receiver):
        # The name does not resolve at all: the request can only arrive through the pinned address.
        port = receiver.server.server_port
        target = WebhookTarget(
            scheme="http", host="hooks.invalid", port=port, path="/hooks/fetal?x=1", addresses=("127.0.0.1",)
        )

        code, error = webhook_target_post(target=target, body=b"{}", headers={}, timeout=5)

        assert (code, error) == (200, "")
        assert receiver.received[0]["headers"]["Host"] == f"hooks.invalid:{port}"

    def test_https_verifies_the_names_certificate_over_the_pinned_address(self, tls_receiver, monkeypatch):
        monkeypatch.setenv("SSL_CERT_FILE", str(tls_receiver.certificate))  # trust the test's own certificate
        pinned = {"port": tls_receiver.port, "path": "/hook", "addresses": ("127.0.0.1",)}

        good = webhook_target_post(
            target=WebhookTarget(scheme="https", host="hooks.test", **pinned), body=b"{}", headers={}, timeout=5
        )
        wrong_name = webhook_target_post(
            target=WebhookTarget(scheme="https", host="other.test", **pinned), body=b"{}", headers={}, timeout=5
        )

        assert good == (200, "")
        assert wrong_name == (None, CONNECTION_FAILED_MESSAGE)
        assert tls_receiver.server_names == ["hooks.test", "other.test"]  # SNI carries the name, not the IP
        assert tls_receiver.hosts == [f"hooks.test:{tls_receiver.port}"]

    @pytest.mark.parametrize("open_port", ["silent", "hangs_up", "speaks_another_protocol"])
    def test_an_open_and_a_closed_port_leave_the_same_record(self, north, image, settings, open_port):
        settings.WEBHOOK_ALLOW_HTTP = True
        settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
        settings.WEBHOOK_TIMEOUT_S = 0.5
        with _open_port(open_port) as open_port_number, _closed_port() as closed_port_number:
            _register(north, f"http://127.0.0.1:{open_port_number}/")
            _register(north, f"http://127.0.0.1:{closed_port_number}/")
            classify(image)
            for delivery in WebhookDelivery.objects.all():
                webhook_delivery_attempt(delivery_id=delivery.id)

        records = {
            (d.status, d.last_response_code, d.last_error)
            for d in WebhookDelivery.objects.filter(event_type="prediction.created")
        }
        assert records == {("RETRYING", None, CONNECTION_FAILED_MESSAGE)}
