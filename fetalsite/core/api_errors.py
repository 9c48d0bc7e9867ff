"""One error vocabulary: ``error_describe`` maps an exception to (HTTP status, code, message).

The API answers it as JSON, ``{"detail", "code", "fields"}``, through ``exception_handler``; the pages'
script actions render the same description as ``patients/_error.html`` (``patients.page_actions``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import (
    PermissionDenied,
    RequestDataTooBig,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from fetalsite.core.errors import ApplicationError

logger = logging.getLogger(__name__)


def _fields_from_django(error: DjangoValidationError) -> dict[str, list[str]]:
    if hasattr(error, "error_dict"):
        return {
            ("non_field_errors" if field == "__all__" else field): [str(m) for m in messages]
            for field, messages in error.message_dict.items()
        }
    return {"non_field_errors": [str(m) for m in error.messages]}


def _flatten(fields: dict, prefix: str = "") -> dict[str, list[str]]:
    """Nested errors (a list field's items, a nested object) become ``name[0]`` / ``name.part`` keys,
    so that ``fields`` is always a flat map of field name to messages."""
    flat: dict[str, list[str]] = {}
    for key, value in fields.items():
        name = f"{prefix}[{key}]" if prefix and isinstance(key, int) else f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(_flatten(value, name))
        elif isinstance(value, list) and any(isinstance(item, dict) for item in value):
            for index, item in enumerate(value):
                if item:
                    flat.update(_flatten(item if isinstance(item, dict) else {"": item}, f"{name}[{index}]"))
        else:
            flat[name] = [str(item) for item in value] if isinstance(value, list) else [str(value)]
    return flat


def _first_message(fields: dict) -> str:
    for messages in fields.values():
        if isinstance(messages, list) and messages:
            first = messages[0]
            return first if isinstance(first, str) else _first_message(first) if isinstance(first, dict) else str(first)
        if isinstance(messages, dict):
            return _first_message(messages)
        if isinstance(messages, str):
            return messages
    return "Invalid input."


def _django_codes(error: DjangoValidationError) -> set[str]:
    errors = (
        [e for field_errors in error.error_dict.values() for e in field_errors]
        if hasattr(error, "error_dict")
        else error.error_list
    )
    return {e.code for e in errors if e.code}


@dataclass(frozen=True)
class ErrorDescription:
    """What went wrong, as every interface says it: HTTP status, machine-readable code, a message for people."""

    status: int
    code: str
    message: str
    # Per-field messages: of a validation error, or of a rule about certain fields (a taken MRN).
    fields: dict[str, list[str]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # an ApplicationError's own details, beside "code"

    def as_api_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"detail": self.message, "code": self.code}
        if self.fields is not None:
            body["fields"] = self.fields
        return {**body, **self.extra}


NOT_FOUND_MESSAGE = "Not found."  # the same for a missing and another clinic's record: ids leak nothing
PERMISSION_DENIED_MESSAGE = "You do not have permission to perform this action."


# Requests Django refuses while reading the body, before any view code runs.
_REQUEST_BODY_ERRORS: dict[type[Exception], tuple[int, str, str]] = {
    RequestDataTooBig: (413, "too_large", "The request body is larger than this server accepts."),
    TooManyFilesSent: (400, "too_many_parts", "The request holds too many files or fields."),
    TooManyFieldsSent: (400, "too_many_parts", "The request holds too many files or fields."),
}


def _too_large_message(exc: DjangoValidationError) -> str:
    """The too-large files' messages; in a multi-file upload each names its part (``file[1]: ...``)."""
    by_field = exc.error_dict.items() if hasattr(exc, "error_dict") else [("file", exc.error_list)]
    return " ".join(
        message if name == "file" else f"{name}: {message}"
        for name, errors in by_field
        for error in errors
        if error.code == "too_large"
        for message in error.messages
    )


def _describe_validation(exc: DjangoValidationError) -> ErrorDescription:
    if "too_large" in _django_codes(exc):
        # A file over UPLOAD_MAX_BYTES: the request entity is too large, not merely invalid. Like every other
        # 413 it has no `fields` (docs/api.md: only validation and detail conflicts carry them).
        return ErrorDescription(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, "too_large", _too_large_message(exc))
    fields = _fields_from_django(exc)
    return ErrorDescription(status.HTTP_400_BAD_REQUEST, "invalid", _first_message(fields), fields)


def error_describe(exc: Exception) -> ErrorDescription | None:
    """The one mapping from the errors services and views raise to (status, code, message); None for others."""
    if isinstance(exc, DjangoValidationError):
        return _describe_validation(exc)
    if type(exc) in _REQUEST_BODY_ERRORS:
        return ErrorDescription(*_REQUEST_BODY_ERRORS[type(exc)])
    if isinstance(exc, ApplicationError):
        return ErrorDescription(exc.http_status, exc.code, exc.message, exc.fields, exc.extra)
    if isinstance(exc, Http404):
        return ErrorDescription(status.HTTP_404_NOT_FOUND, "not_found", NOT_FOUND_MESSAGE)
    if isinstance(exc, PermissionDenied):
        # Services word their refusals for people ("Only clinicians can review predictions.").
        return ErrorDescription(status.HTTP_403_FORBIDDEN, "permission_denied", str(exc) or PERMISSION_DENIED_MESSAGE)
    return None


def exception_handler(exc, context):
    described = error_describe(exc)
    if described is not None:
        set_rollback()
        return Response(described.as_api_body(), status=described.status)

    response = drf_exception_handler(exc, context)
    if response is None:
        logger.exception("Unhandled error in API view %s", context.get("view").__class__.__name__)
        return Response(
            {"detail": "An internal error occurred; it has been logged.", "code": "server_error"},
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail})
        response.data = {"detail": _first_message(fields), "code": "invalid", "fields": fields}
    else:
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        response.data = {
            "detail": str(exc.detail) if isinstance(exc, exceptions.APIException) else str(exc),
            "code": codes if isinstance(codes, str) else "error",
        }
    return response


@csrf_exempt  # no CSRF page for a POST to a wrong path: the answer is the JSON 404
def api_not_found(request, *args, **kwargs) -> JsonResponse:
    """Unknown paths under /api/v1/ answer in the API's error shape."""
    detail = "There is no API endpoint at this path."
    if not request.path.endswith("/"):
        try:
            match = resolve(request.path + "/")
        except Resolver404:
            match = None
        if match is not None and match.func is not api_not_found:
            detail += f" Did you mean {request.path}/ (with the trailing slash)?"
    return JsonResponse({"detail": detail, "code": "not_found"}, status=404)


def not_found(request, exception=None):
    """handler404: JSON for anything under /api/, Django's page for people elsewhere."""
    if request.path.startswith("/api/"):
        return api_not_found(request)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def server_error(request):
    """handler500: an API client never gets an HTML page or a stack trace."""
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"detail": "An internal error occurred; it has been logged.", "code": "server_error"}, status=500
        )
    from django.views.defaults import server_error as html_server_error

    return html_server_error(request)
