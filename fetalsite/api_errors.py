"""One JSON shape for every API error: {"detail", "code", "fields"}."""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from fetalsite.errors import ApplicationError

logger = logging.getLogger(__name__)


def _fields_from_django(error: DjangoValidationError) -> dict[str, list[str]]:
    if hasattr(error, "error_dict"):
        return {
            ("non_field_errors" if field == "__all__" else field): [str(m) for m in messages]
            for field, messages in error.message_dict.items()
        }
    return {"non_field_errors": [str(m) for m in error.messages]}


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


def exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        fields = _fields_from_django(exc)
        return Response(
            {"detail": _first_message(fields), "code": "invalid", "fields": fields},
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
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = {"detail": _first_message(fields), "code": "invalid", "fields": fields}
    else:
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        response.data = {
            "detail": str(exc.detail) if isinstance(exc, exceptions.APIException) else str(exc),
            "code": codes if isinstance(codes, str) else "error",
        }
    return response
