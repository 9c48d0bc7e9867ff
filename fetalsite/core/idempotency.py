"""Writes of idempotency keys: claim a key for a request, then store or release its result.

Shared plumbing: it serves every idempotent POST of the API, whichever app the POST belongs to."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from fetalsite.core.errors import ApplicationError
from fetalsite.core.models import IdempotencyKey

_VALID_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


class IdempotencyKeyInProgress(ApplicationError):
    http_status = 409
    code = "idempotency_in_progress"


class IdempotencyKeyReused(ApplicationError):
    http_status = 409
    code = "idempotency_key_reused"


class IdempotencyKeyMismatch(ApplicationError):
    """Same key and URL, another body: replaying the first answer would silently drop this request."""

    http_status = 422
    code = "idempotency_key_mismatch"


@dataclass(frozen=True)
class Claim:
    record: IdempotencyKey
    replay: IdempotencyKey | None  # the finished earlier request to answer with, if any


def _expired_before():
    return timezone.now() - timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)


def _abandoned_before():
    # Longer than any request may take (gunicorn's timeout is 60 s).
    return timezone.now() - timedelta(minutes=10)


def idempotency_key_claim(*, user, key: str, request_path: str, request_hash: str) -> Claim:
    """Claim ``key`` for this request, or return the finished request to replay.

    ``request_hash`` fingerprints the method, path and body: only the very same request is replayed.
    The claim commits at once, so a concurrent retry with the same key sees it and gets a 409."""
    if not _VALID_KEY.match(key):
        raise ValidationError({"Idempotency-Key": "Use 1 to 255 printable ASCII characters, without spaces."})
    # Stored answers hold patient data: drop this user's expired ones as we go.
    IdempotencyKey.objects.filter(user=user, created_at__lt=_expired_before()).delete()
    for _ in range(2):
        try:
            with transaction.atomic():
                record = IdempotencyKey.objects.create(
                    user=user, key=key, request_path=request_path, request_hash=request_hash
                )
            return Claim(record=record, replay=None)
        except IntegrityError:
            existing = IdempotencyKey.objects.filter(user=user, key=key).first()
            if existing is None:
                continue  # released meanwhile: claim again
            abandoned = existing.response_status is None and existing.created_at < _abandoned_before()
            if existing.created_at < _expired_before() or abandoned:
                existing.delete()  # expired, or its request died without an answer
                continue
            if existing.request_path != request_path:
                raise IdempotencyKeyReused(
                    "This Idempotency-Key was already used for another request; use a new key."
                ) from None
            if existing.request_hash != request_hash:
                raise IdempotencyKeyMismatch(
                    "This Idempotency-Key was already used with a different request body; "
                    "use a new key for a new request."
                ) from None
            if existing.response_status is None:
                raise IdempotencyKeyInProgress(
                    "A request with this Idempotency-Key is still being processed; retry in a moment."
                ) from None
            return Claim(record=existing, replay=existing)
    raise IdempotencyKeyInProgress("A request with this Idempotency-Key is still being processed.")


def idempotency_key_complete(
    *, record: IdempotencyKey, response_status: int, response_body, response_location: str = ""
) -> IdempotencyKey:
    record.response_status = response_status
    record.response_body = response_body
    record.response_location = response_location
    record.save(update_fields=["response_status", "response_body", "response_location"])
    return record


def idempotency_key_release(*, record: IdempotencyKey) -> None:
    """The request failed: forget the key so that a corrected retry can use it."""
    IdempotencyKey.objects.filter(id=record.id, response_status__isnull=True).delete()
