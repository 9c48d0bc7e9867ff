"""Webhooks: events recorded with the change that caused them, POSTed signed by a Celery task.

``webhook_event_record`` runs inside the service's transaction and writes one delivery per
subscribed endpoint (an outbox: no event without its change, no change without its event); the
service that called it queues the delivery task with ``transaction.on_commit``
(``classifier.services.webhook_deliveries_send``), so that this module imports neither the services nor
the tasks. ``webhook_delivery_attempt`` is the task's body. What an event says is
``classifier.webhook_events``: its payload is built with the API's own output serializers, so a receiver
sees what ``GET /api/v1/predictions/<id>/`` shows.

Signature: ``X-Fetal-Signature: sha256=<hex>``, the HMAC-SHA256 with the endpoint's secret of
``<X-Fetal-Timestamp>.<raw body>``; receivers recompute it and reject stale timestamps (docs/api.md's
``verify``, which the tests run)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from classifier.models import ClassificationJob, Prediction, WebhookDelivery, WebhookEndpoint, WebhookEvent
from classifier.webhook_events import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    EVENT_ID_HEADER,
    EVENT_SERIALIZERS,
    EVENT_VERSION_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    webhook_test_event_subject,
)
from classifier.webhook_targets import (
    REFUSED_TARGET_MESSAGE,
    WebhookTargetRefused,
    webhook_target_post,
    webhook_target_resolve,
)
from fetalsite.core.request_id import HEADER as REQUEST_ID_HEADER
from fetalsite.core.request_id import current_request_id, new_request_id

logger = logging.getLogger(__name__)


# ---- Emitting ----------------------------------------------------------------------------------


def _deliveries_create(
    *, endpoints: list[WebhookEndpoint], event_type: str, subject, request_id: str = ""
) -> list[WebhookDelivery]:
    """One event (one id, one payload) and a delivery of it to each endpoint, under ``request_id`` (else the
    current request's, else a new one): every POST of it carries that X-Request-ID."""
    if not endpoints:
        return []
    event_id = uuid.uuid4()
    envelope = {"id": event_id, "created_at": timezone.now(), "data": subject}
    payload = EVENT_SERIALIZERS[event_type](envelope).data
    request_id = request_id or current_request_id() or new_request_id()
    deliveries = []
    for endpoint in endpoints:
        delivery = WebhookDelivery(
            endpoint=endpoint, event_id=event_id, event_type=event_type, payload=payload, request_id=request_id
        )
        delivery.full_clean(validate_constraints=False)
        delivery.save()
        deliveries.append(delivery)
    return deliveries


def webhook_event_record(*, event_type: str, clinic_id: int, subject, request_id: str = "") -> list[WebhookDelivery]:
    """Record the event for every active endpoint of the clinic that subscribed to it; ``subject`` is what the
    event reports (a prediction or a job); ``request_id`` that of the request it follows from (default: the
    current one).

    Call inside the transaction of the change the event reports, then queue the deliveries it returns
    (``classifier.services.webhook_deliveries_send``)."""
    endpoints = [
        endpoint
        for endpoint in WebhookEndpoint.objects.filter(is_active=True, clinic_id=clinic_id).order_by("id")
        if event_type in endpoint.events
    ]
    return _deliveries_create(endpoints=endpoints, event_type=event_type, subject=subject, request_id=request_id)


def webhook_prediction_event_record(*, prediction: Prediction, event_type: str) -> list[WebhookDelivery]:
    clinic_id = prediction.job.image.study.patient.clinic_id
    # A new prediction follows from its upload's request (whichever job of a micro-batch the worker is running);
    # a review from the reviewer's request, the current one.
    request_id = prediction.job.request_id if event_type == WebhookEvent.PREDICTION_CREATED else ""
    return webhook_event_record(event_type=event_type, clinic_id=clinic_id, subject=prediction, request_id=request_id)


def webhook_job_failed_record(*, job: ClassificationJob) -> list[WebhookDelivery]:
    clinic_id = job.image.study.patient.clinic_id
    return webhook_event_record(
        event_type=WebhookEvent.JOB_FAILED, clinic_id=clinic_id, subject=job, request_id=job.request_id
    )


def webhook_test_event_record(*, endpoint: WebhookEndpoint, requested_by) -> WebhookDelivery:
    """A ``webhook.test`` event for this endpoint only, whatever it subscribed to."""
    subject = webhook_test_event_subject(endpoint=endpoint, requested_by=requested_by)
    (delivery,) = _deliveries_create(endpoints=[endpoint], event_type=WebhookEvent.TEST, subject=subject)
    return delivery


# ---- Delivering --------------------------------------------------------------------------------


def webhook_signature(*, secret: str, timestamp: str, body: bytes) -> str:
    """The value of X-Fetal-Signature for this body and timestamp."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def _retry_delay(attempts: int) -> float:
    return min(settings.WEBHOOK_RETRY_BASE_S * 2 ** (attempts - 1), settings.WEBHOOK_RETRY_MAX_S)


def _post(*, url: str, body: bytes, headers: dict) -> tuple[int | None, str]:
    """POST the body to the URL's host, vetted again now (DNS may have changed since registration)."""
    try:
        target = webhook_target_resolve(url)
    except WebhookTargetRefused:
        return None, REFUSED_TARGET_MESSAGE
    return webhook_target_post(target=target, body=body, headers=headers, timeout=settings.WEBHOOK_TIMEOUT_S)


def webhook_delivery_attempt(*, delivery_id: int) -> float | None:
    """Send one delivery once. Returns the seconds to wait before the next attempt, or None when
    there is nothing more to do (delivered, given up, gone, or another worker is sending it)."""
    now = timezone.now()
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().select_related("endpoint").filter(id=delivery_id).first()
        if delivery is None or delivery.status in (WebhookDelivery.Status.SUCCEEDED, WebhookDelivery.Status.FAILED):
            return None
        stale = now - timedelta(seconds=settings.WEBHOOK_TIMEOUT_S * 3)
        if delivery.status == WebhookDelivery.Status.SENDING and delivery.last_attempt_at > stale:
            return None
        endpoint = delivery.endpoint
        if not endpoint.is_active:
            delivery.status = WebhookDelivery.Status.FAILED
            delivery.last_error = "The endpoint was disabled."
            delivery.save(update_fields=["status", "last_error"])
            return None
        delivery.status = WebhookDelivery.Status.SENDING
        delivery.attempts += 1
        delivery.last_attempt_at = now
        delivery.next_attempt_at = None
        delivery.save(update_fields=["status", "attempts", "last_attempt_at", "next_attempt_at"])

    body = json.dumps(delivery.payload, cls=DjangoJSONEncoder, separators=(",", ":"), sort_keys=True).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "fetalsite-webhooks/1",
        EVENT_HEADER: delivery.event_type,
        EVENT_ID_HEADER: str(delivery.event_id),
        # Deliveries recorded before the format had versions (still pending at an upgrade) are version 1.
        EVENT_VERSION_HEADER: str(delivery.payload.get("version", 1)),
        DELIVERY_HEADER: str(delivery.id),
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: webhook_signature(secret=endpoint.secret, timestamp=timestamp, body=body),
        # The request the event follows from (its upload's, for a prediction): the same id is in our logs.
        # Deliveries recorded before request ids existed send their event id.
        REQUEST_ID_HEADER: delivery.request_id or delivery.event_id.hex,
    }
    code, error = _post(url=endpoint.url, body=body, headers=headers)

    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().get(id=delivery_id)
        delivery.last_response_code = code
        delivery.last_error = error[:2000]
        retry_in = None
        if code is not None and 200 <= code < 300:
            delivery.status = WebhookDelivery.Status.SUCCEEDED
            delivery.delivered_at = timezone.now()
        elif delivery.attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
            delivery.status = WebhookDelivery.Status.FAILED
            logger.warning("Webhook delivery %s failed for good after %s attempts", delivery.id, delivery.attempts)
        else:
            retry_in = _retry_delay(delivery.attempts)
            delivery.status = WebhookDelivery.Status.RETRYING
            delivery.next_attempt_at = timezone.now() + timedelta(seconds=retry_in)
        delivery.save(update_fields=["status", "last_response_code", "last_error", "delivered_at", "next_attempt_at"])
    return retry_in


def webhook_delivery_stale_ids() -> list[int]:
    """Deliveries whose message was never sent (broker down), was lost, or whose worker died: to send again
    (``classifier.services.webhook_deliveries_requeue_stale``)."""
    now = timezone.now()
    grace = timedelta(seconds=settings.WEBHOOK_REQUEUE_AFTER_S)
    stale = (
        WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING, created_at__lt=now - grace)
        | WebhookDelivery.objects.filter(status=WebhookDelivery.Status.RETRYING, next_attempt_at__lt=now - grace)
        | WebhookDelivery.objects.filter(
            status=WebhookDelivery.Status.SENDING,
            last_attempt_at__lt=now - timedelta(seconds=settings.WEBHOOK_TIMEOUT_S * 3) - grace,
        )
    )
    return sorted(stale.values_list("id", flat=True))


# ---- Writes the admin's services make -------------------------------------------------------------


@transaction.atomic
def webhook_endpoint_save(*, endpoint: WebhookEndpoint, update_fields: list[str] | None = None) -> WebhookEndpoint:
    """Validate (the URL's host is vetted here) and save; the services in classifier.services check who may."""
    endpoint.full_clean()
    endpoint.save(update_fields=update_fields)
    return endpoint


@transaction.atomic
def webhook_delivery_reset(*, delivery_id: int) -> WebhookDelivery:
    """Make a delivery pending again with a fresh attempt budget; the caller queues it."""
    delivery = WebhookDelivery.objects.select_for_update().get(id=delivery_id)
    delivery.status = WebhookDelivery.Status.PENDING
    delivery.attempts = 0
    delivery.next_attempt_at = None
    delivery.save(update_fields=["status", "attempts", "next_attempt_at"])
    return delivery
