"""Writes of the counters: each an UPDATE ... SET count = count + 1, so concurrent hosts never lose a count."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from fetalsite.core.errors import ApplicationError
from fetalsite.metrics.models import UploadRefusal

REASON_MAX = UploadRefusal._meta.get_field("reason").max_length


def refusal_reason(error: Exception) -> str:
    """The code an error answers with: a rule's own code, ``permission_denied``, or a validation error's first code
    (several refused files: the first one's). Codes are the project's fixed vocabulary, so the label stays small."""
    if isinstance(error, ApplicationError):
        return error.code
    if isinstance(error, PermissionDenied):
        return "permission_denied"
    if isinstance(error, ValidationError):
        fields = error.error_dict.values() if hasattr(error, "error_dict") else [error.error_list]
        errors = [each for field in fields for each in field]
        return next((e.code for e in errors if e.code), "invalid")
    return "error"


def upload_refusal_record(*, reason: str) -> None:
    """Count one refused upload. No permission check: no user acts here, the service that refused the upload counts
    it. No full_clean either: the reason is one of our own codes, cut to the column's length."""
    reason, now = (reason or "unknown")[:REASON_MAX], timezone.now()
    counted = UploadRefusal.objects.filter(reason=reason)
    with transaction.atomic():
        if counted.update(count=F("count") + 1, last_refused_at=now):
            return
        try:
            with transaction.atomic():  # a savepoint: a concurrent first refusal may have made the row meanwhile
                UploadRefusal.objects.create(reason=reason, count=1, last_refused_at=now)
        except IntegrityError:
            counted.update(count=F("count") + 1, last_refused_at=now)
