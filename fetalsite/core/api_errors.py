"""One JSON shape for every API error: {"detail", "code", "fields"}."""

from __future__ import annotations

import logging

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


def exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        fields = _fields_from_django(exc)
        if "too_large" in _django_codes(exc):
            # A file over UPLOAD_MAX_BYTES: the request entity is too large, not merely invalid.
            return Response(
                {"detail": _first_message(fields), "code": "too_large", "fields": fields},
                status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        return Response(
            {"detail": _first_message(fields), "code": "invalid", "fields": fields},
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, RequestDataTooBig):
        return Response(
            {"detail": "The request body is larger than this server accepts.", "code": "too_large"},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, TooManyFilesSent | TooManyFieldsSent):
        return Response(
            {"detail": "The request holds too many files or fields.", "code": "too_many_parts"},
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, ApplicationError):
        return Response({"detail": exc.message, "code": exc.code, **exc.extra}, status=exc.http_status)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

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
