"""What the API accepts in a request body: input serializers that refuse fields they do not declare,
and the fingerprint that binds an ``Idempotency-Key`` to the request it was first sent with."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from django.core.files.uploadedfile import UploadedFile
from django.core.serializers.json import DjangoJSONEncoder
from rest_framework import serializers

UNKNOWN_FIELD = "Unknown field."


# An input serializer that answers 400 for every key it does not declare. A client that sends
# ``clinic``, ``status`` or ``reviewed_by`` believes it sets them; ignoring them silently would leave it
# believing so. Every write API validates its body through a subclass (a bodiless write through
# ``validate_empty_body``), and the schema class marks their request bodies ``additionalProperties: false``.
# (Comments, not docstrings: drf-spectacular would copy a docstring into every subclass's schema.)
class StrictInputSerializer(serializers.Serializer):
    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = [key for key in data if key not in self.fields]
            if unknown:
                raise serializers.ValidationError({key: [UNKNOWN_FIELD] for key in unknown})
        return super().to_internal_value(data)


class EmptyInputSerializer(StrictInputSerializer):
    pass  # for writes that take no body (complete, retry, rotate): any field sent is unknown


def validate_empty_body(request) -> None:
    """Refuse a body on a write that takes none (400 naming each field sent)."""
    EmptyInputSerializer(data=request.data).is_valid(raise_exception=True)


def _canonical(value):
    # A file counts by the sha256 of its bytes; the view reads it again from the start.
    if isinstance(value, UploadedFile):
        digest = hashlib.sha256()
        for chunk in value.chunks():
            digest.update(chunk)
        value.seek(0)
        return {"sha256": digest.hexdigest()}
    return value


def request_fingerprint(request) -> str:
    """sha256 of the request's method, path and parsed body.

    JSON counts by its canonical form (key order and whitespace do not matter); form and multipart
    bodies by each field's values in order, files by their bytes' sha256."""
    data = request.data
    if hasattr(data, "lists"):  # QueryDict: form fields and uploaded files, each possibly repeated
        body = {key: [_canonical(value) for value in values] for key, values in data.lists()}
    else:
        body = data
    canonical = json.dumps(
        {"method": request.method, "path": request.path, "body": body},
        sort_keys=True,
        separators=(",", ":"),  # ASCII escapes: a lone surrogate in a JSON string still hashes
        cls=DjangoJSONEncoder,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()
