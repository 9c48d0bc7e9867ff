from __future__ import annotations

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models


class IdempotencyKey(models.Model):
    """A client's ``Idempotency-Key`` and the response it got, replayed when the request is retried.

    Every app's idempotent POST uses it, so it lives here; its table keeps the name it had when the
    classifier app owned it (migrations core 0001 and classifier 0005 moved only Django's record of it)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    request_path = models.CharField(max_length=500)
    # sha256 of the request's method, path and canonical body: a retry must send the same request.
    request_hash = models.CharField(max_length=64, default="")
    # Null while the first request is still being processed.
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    # The response's Location header (a 201 names the new record): a replay answers with it too.
    response_location = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "classifier_idempotencykey"
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_unique_per_user")]

    def __str__(self) -> str:
        return f"Idempotency key #{self.id} of user #{self.user_id}"
