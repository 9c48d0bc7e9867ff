"""Small helpers shared by the API modules: permissions, pagination, throttles, size-limited
JSON, idempotent POSTs and the documented error responses.

Token authentication lives in ``api_auth`` and the schema class in ``api_schema``: DRF imports
those while it starts, before this module's imports can run."""

from __future__ import annotations

import functools
import logging

from django.conf import settings
from django.core.cache import caches
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse
from rest_framework import exceptions, serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import JSONParser
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

logger = logging.getLogger("fetalsite.api")


def inline_serializer(*, name: str, fields: dict, data=None, **kwargs) -> serializers.Serializer:
    serializer_class = type(name, (serializers.Serializer,), fields)
    if data is not None:
        return serializer_class(data=data, **kwargs)
    return serializer_class(**kwargs)


class HasRequiredPerms(BasePermission):
    """Checks the view's ``required_perms`` (role rights) for the request's method."""

    message = "Your role does not allow this action."

    def has_permission(self, request, view) -> bool:
        perms = getattr(view, "required_perms", {})
        needed = perms.get(request.method, perms.get("*", []))
        return bool(request.user and request.user.is_authenticated and request.user.has_perms(needed))


class ApiPagination(LimitOffsetPagination):
    """``?limit=&offset=`` on every list; at most 200 items a page."""

    default_limit = 50
    max_limit = 200


# ---- Throttling ------------------------------------------------------------


class _SettingsRateMixin:
    """Rates come from ``settings.API_THROTTLE_RATES`` at request time, so tests and
    deployments can change them; counters live in the ``API_THROTTLE_CACHE`` cache."""

    def get_rate(self):
        return settings.API_THROTTLE_RATES.get(self.scope)

    @property
    def cache(self):
        return caches[settings.API_THROTTLE_CACHE]


class ApiUserRateThrottle(_SettingsRateMixin, UserRateThrottle):
    scope = "user"


class ApiAnonRateThrottle(_SettingsRateMixin, AnonRateThrottle):
    scope = "anon"


class ApiLoginRateThrottle(_SettingsRateMixin, AnonRateThrottle):
    """Password attempts at ``POST /api/v1/auth/token/``, counted per client address."""

    scope = "login"


# ---- Parsing -----------------------------------------------------------------------------------


class RequestTooLarge(exceptions.APIException):
    status_code = 413
    default_detail = "The request body is larger than this server accepts."
    default_code = "too_large"


def content_length(meta) -> int:
    """The request's declared body size; 0 when absent or malformed (Django reads it the same way)."""
    try:
        return max(int(meta.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


class LimitedJSONParser(JSONParser):
    """JSON bodies are small; refuse one over DATA_UPLOAD_MAX_MEMORY_SIZE before reading it."""

    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        length = content_length(request.META) if request is not None else 0
        if limit is not None and length > limit:
            raise RequestTooLarge()
        return super().parse(stream, media_type, parser_context)


# ---- Idempotency-Key ---------------------------------------------------------------------------

IDEMPOTENCY_HEADER = "Idempotency-Key"

IDEMPOTENCY_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description=(
        "A unique string (1 to 255 printable ASCII characters, a UUID is ideal) that makes a retried "
        "POST safe: the same request again (same user, URL and body: JSON compared by content, uploads by "
        "their files' bytes and the other form fields) with the same key within 24 hours gets the first "
        "request's response again (with `Idempotent-Replayed: true`) and changes nothing. The same key with "
        "a different body answers 422 `idempotency_key_mismatch` and changes nothing. A key still being "
        "processed answers 409 `idempotency_in_progress`; a key used for another URL answers 409 "
        "`idempotency_key_reused`. Failed requests (4xx/5xx) are not stored, so the key can be used again "
        "after fixing the request."
    ),
)


def idempotent(view_method):
    """Wrap a view's POST: replay the stored response for a repeated ``Idempotency-Key``."""

    @functools.wraps(view_method)
    def wrapper(self, request, *args, **kwargs):
        from classifier import idempotency

        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is None:
            return view_method(self, request, *args, **kwargs)
        from fetalsite.api_input import request_fingerprint

        claim = idempotency.idempotency_key_claim(
            user=request.user, key=key, request_path=request.path, request_hash=request_fingerprint(request)
        )
        if claim.replay is not None:
            response = Response(claim.replay.response_body, status=claim.replay.response_status)
            response["Idempotent-Replayed"] = "true"
            return response
        try:
            response = view_method(self, request, *args, **kwargs)
        except BaseException:
            idempotency.idempotency_key_release(record=claim.record)
            raise
        if 200 <= response.status_code < 300:
            idempotency.idempotency_key_complete(
                record=claim.record, response_status=response.status_code, response_body=response.data
            )
        else:
            idempotency.idempotency_key_release(record=claim.record)
        return response

    return wrapper


# ---- Documented errors -------------------------------------------------------------------------


class ErrorSerializer(serializers.Serializer):
    """The one shape of every error the API returns."""

    detail = serializers.CharField(help_text="A sentence for people.")
    code = serializers.CharField(help_text="A stable, machine-readable code.")


# ``fields`` is a Serializer attribute, so the key of that name is declared after the class.
ErrorSerializer._declared_fields["fields"] = serializers.DictField(
    child=serializers.ListField(child=serializers.CharField()),
    required=False,
    help_text="Validation errors only: the messages for each invalid field (`non_field_errors` for the rest).",
)


_ERRORS = {
    400: (
        "The request is invalid; `fields` says what is wrong with each field.",
        {"detail": "This field is required.", "code": "invalid", "fields": {"mrn": ["This field is required."]}},
    ),
    401: (
        "No credentials, or an unknown or revoked token.",
        {"detail": "Authentication credentials were not provided.", "code": "not_authenticated"},
    ),
    403: (
        "Your role does not allow this action.",
        {"detail": "Your role does not allow this action.", "code": "permission_denied"},
    ),
    404: (
        "No such record in your clinic (another clinic's record answers the same).",
        {"detail": "Not found.", "code": "not_found"},
    ),
    409: (
        "The request conflicts with the record's state.",
        {"detail": "This study is completed; open a new study to add images.", "code": "study_not_open"},
    ),
    413: (
        "The request or one of its files is too large.",
        {"detail": "The file is larger than the 50 MB limit.", "code": "too_large"},
    ),
    415: (
        "The request's Content-Type is not accepted here.",
        {"detail": 'Unsupported media type "text/plain" in request.', "code": "unsupported_media_type"},
    ),
    422: (
        "This Idempotency-Key was already used with a different request body; nothing was changed.",
        {
            "detail": "This Idempotency-Key was already used with a different request body; "
            "use a new key for a new request.",
            "code": "idempotency_key_mismatch",
        },
    ),
    429: (
        "Too many requests; wait for the seconds in the `Retry-After` header.",
        {"detail": "Request was throttled. Expected available in 12 seconds.", "code": "throttled"},
    ),
}


def error_responses(*codes: int, examples: dict[int, dict] | None = None) -> dict[int, OpenApiResponse]:
    """OpenAPI responses for the given error statuses, each with an example body.

    401 and 429 are added to every authenticated endpoint by the caller's choice of codes."""
    responses = {}
    for code in codes:
        description, example = _ERRORS[code]
        example = (examples or {}).get(code, example)
        responses[code] = OpenApiResponse(
            response=ErrorSerializer,
            description=description,
            examples=[OpenApiExample(f"Error {code}", value=example, status_codes=[str(code)], response_only=True)],
        )
    return responses


READ_ERRORS = (401, 404, 429)
WRITE_ERRORS = (400, 401, 403, 404, 413, 415, 429)  # operations with a JSON body
