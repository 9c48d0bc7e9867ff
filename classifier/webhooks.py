"""Webhooks: events recorded with the change that caused them, POSTed signed by a Celery task.

``webhook_event_record`` runs inside the service's transaction and writes one delivery per
subscribed endpoint (an outbox: no event without its change, no change without its event); the
service that called it queues the delivery task with ``transaction.on_commit``
(``classifier.services.webhook_deliveries_send``), so that this module imports neither the services nor
the tasks. ``webhook_delivery_attempt`` is the task's body. The payload's job and prediction are the API's own
output serializers (classifier.serializers), so a receiver sees what ``GET /api/v1/predictions/<id>/`` shows.

Signature: ``X-Fetal-Signature: sha256=<hex>``, the HMAC-SHA256 with the endpoint's secret of
``<X-Fetal-Timestamp>.<raw body>``; receivers recompute it and reject stale timestamps."""

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
from django.urls import reverse
from django.utils import timezone

from classifier.models import ClassificationJob, Prediction, WebhookDelivery, WebhookEndpoint, WebhookEvent
from classifier.serializers import JobOutputSerializer, PredictionOutputSerializer
from classifier.webhook_targets import (
    REFUSED_TARGET_MESSAGE,
    WebhookTargetRefused,
    webhook_target_post,
    webhook_target_resolve,
)

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Fetal-Signature"
TIMESTAMP_HEADER = "X-Fetal-Timestamp"
EVENT_HEADER = "X-Fetal-Event"
EVENT_ID_HEADER = "X-Fetal-Event-Id"
DELIVERY_HEADER = "X-Fetal-Delivery"


# ---- Payloads ----------------------------------------------------------------------------------


def _links(image_id: int) -> dict:
    return {
        "image": reverse("api-image", args=[image_id]),
        "history": reverse("api-image-history", args=[image_id]),
    }


# ---- Emitting ----------------------------------------------------------------------------------


def webhook_event_record(*, event_type: str, image_id: int, data: dict) -> list[WebhookDelivery]:
    """Record the event for every active endpoint of the image's clinic that wants it.

    Call inside the transaction of the change the event reports, then queue the deliveries it returns
    (``classifier.services.webhook_deliveries_send``)."""
    endpoints = [
        endpoint
        for endpoint in WebhookEndpoint.objects.filter(is_active=True, clinic__patients__studies__images=image_id)
        if event_type in endpoint.events
    ]
    if not endpoints:
        return []
    event_id = uuid.uuid4()
    payload = {
        "id": str(event_id),
        "type": event_type,
        "created_at": timezone.now(),
        "data": {**data, "links": _links(image_id)},
    }
    deliveries = []
    for endpoint in endpoints:
        delivery = WebhookDelivery(endpoint=endpoint, event_id=event_id, event_type=event_type, payload=payload)
        delivery.full_clean(validate_constraints=False)
        delivery.save()
        deliveries.append(delivery)
    return deliveries


def webhook_prediction_event_record(*, prediction: Prediction, event_type: str) -> list[WebhookDelivery]:
    job = prediction.job
    image = job.image
    prediction_data = dict(PredictionOutputSerializer(prediction).data)
    return webhook_event_record(
        event_type=event_type,
        image_id=image.id,
        data={"study": image.study_id, "image": image.id, "prediction": prediction_data},
    )


def webhook_job_failed_record(*, job: ClassificationJob) -> list[WebhookDelivery]:
    image = job.image
    return webhook_event_record(
        event_type=WebhookEvent.JOB_FAILED,
        image_id=image.id,
        data={"study": image.study_id, "image": image.id, "job": dict(JobOutputSerializer(job).data)},
    )


# ---- Delivering --------------------------------------------------------------------------------


def webhook_signature(*, secret: str, timestamp: str, body: bytes) -> str:
    """The value of X-Fetal-Signature for this body and timestamp."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def webhook_signature_verify(*, secret: str, timestamp: str, body: bytes, signature: str, tolerance_s: int = 300):
    """What a receiver does (used by the tests and shown in docs/api.md)."""
    fresh = abs(time.time() - int(timestamp)) <= tolerance_s
    return fresh and hmac.compare_digest(webhook_signature(secret=secret, timestamp=timestamp, body=body), signature)


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
        DELIVERY_HEADER: str(delivery.id),
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: webhook_signature(secret=endpoint.secret, timestamp=timestamp, body=body),
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


# ---- Admin actions -----------------------------------------------------------------------------


@transaction.atomic
def webhook_endpoint_save(*, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    endpoint.full_clean()
    endpoint.save()
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
