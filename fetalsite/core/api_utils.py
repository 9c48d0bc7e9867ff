"""Small helpers shared by the API modules: permissions, pagination, throttles, size-limited
JSON, idempotent POSTs and the documented error responses.

Token authentication lives in ``fetalsite.accounts.authentication`` and the schema class in ``api_schema``:
DRF imports those while it starts, before this module's imports can run."""

from __future__ import annotations

import functools
import itertools
import logging
import re

from django.conf import settings
from django.core.cache import caches
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import exceptions, serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import JSONParser
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle
from rest_framework.utils import json

from fetalsite.core.shown import note_listed

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


# Ids are BigAutoFields: signed 64-bit on PostgreSQL and SQLite. A larger number in a query makes
# SQLite raise OverflowError (a 500), so integer query parameters are held to this range.
DB_INTEGER_MIN = -(2**63)
DB_INTEGER_MAX = 2**63 - 1
_WHOLE_NUMBER = re.compile(r"-?[0-9]+")


def parse_whole_number(raw: str) -> int | None:
    """``raw`` as an integer if it is written as one (ASCII digits, an optional minus), else None.

    ``1.0``, ``+1``, `` 1``, ``1e3`` and other scripts' digits are not whole numbers here, although
    Python's ``int()`` or Django's IntegerField take some of them. A number of 20 digits or more is
    returned as one just beyond the database's range: ``int()`` of thousands of digits is slow."""
    if not _WHOLE_NUMBER.fullmatch(raw):
        return None
    digits = raw.lstrip("-").lstrip("0")
    if len(digits) > 19:
        return DB_INTEGER_MIN - 1 if raw.startswith("-") else DB_INTEGER_MAX + 1
    return int(raw)


class ApiPagination(LimitOffsetPagination):
    """``?limit=`` (a whole number from 1 to 200; default 50) and ``?offset=`` (a whole number from 0;
    default 0) on every list. Any other value, ``limit=0``, ``limit=500`` or ``offset=abc`` among them,
    answers 400 naming the parameter, before the list is counted: a client is never handed another page
    size or page than the one it asked for."""

    default_limit = 50
    max_limit = 200
    limit_query_description = f"How many results to return: a whole number from 1 to {max_limit} (default 50)."
    offset_query_description = "How many results to skip: a whole number from 0 (default 0)."

    def _page_parameters(self, request) -> dict[str, int]:
        """The limit and offset the request gives (those it leaves out are absent); 400 for any invalid one."""
        bounds = {self.limit_query_param: (1, self.max_limit), self.offset_query_param: (0, DB_INTEGER_MAX)}
        values: dict[str, int] = {}
        errors: dict[str, list[str]] = {}
        for name, (low, high) in bounds.items():
            raw = request.query_params.get(name)
            if raw is None:
                continue
            number = parse_whole_number(raw)
            if number is None or not low <= number <= high:
                errors[name] = [f"Enter a whole number from {low} to {high}."]
            else:
                values[name] = number
        if errors:
            raise exceptions.ValidationError(errors)
        return values

    def get_limit(self, request):
        return self._page_parameters(request).get(self.limit_query_param, self.default_limit)

    def get_offset(self, request):
        return self._page_parameters(request).get(self.offset_query_param, 0)

    def paginate_queryset(self, queryset, request, view=None):
        self._page_parameters(request)  # both checked before DRF counts the rows (it reads the offset after)
        page = super().paginate_queryset(queryset, request, view)
        # The access log records the patients of every page an API list shows.
        note_listed(request, page or [])
        return page

    def get_schema_operation_parameters(self, view):
        limit, offset = super().get_schema_operation_parameters(view)
        limit["schema"] = {"type": "integer", "minimum": 1, "maximum": self.max_limit, "default": self.default_limit}
        offset["schema"] = {"type": "integer", "format": "int64", "minimum": 0, "maximum": DB_INTEGER_MAX, "default": 0}
        return [limit, offset]


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


# No API body nests deeper than 3; deeper input is refused before json.loads, whose recursion
# would otherwise end in a RecursionError (a 500) near 1,000 levels.
JSON_MAX_DEPTH = 32


class JsonTooDeep(exceptions.ParseError):
    default_detail = f"The JSON body nests arrays and objects more than {JSON_MAX_DEPTH} levels deep."
    default_code = "too_deep"


_JSON_ESCAPE = re.compile(r"\\.", re.DOTALL)
_JSON_STRING = re.compile(r'"[^"]*"')  # once escapes are gone, a string ends at the next quote
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")
_BRACKET_STEP = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 and -1 as signed bytes


def json_nesting_depth(text: str) -> int:
    """How deeply arrays and objects nest in a JSON text, found without parsing it: escapes and
    strings are dropped, then each opening bracket counts +1 and each closing one -1. Linear, no
    recursion, every loop in C: a 5 MB body costs at most about as long as json.loads takes for it."""
    brackets = _NOT_A_BRACKET.sub("", _JSON_STRING.sub("", _JSON_ESCAPE.sub("", text))).encode("ascii")
    steps = memoryview(brackets.translate(_BRACKET_STEP)).cast("b")
    return max(itertools.accumulate(steps), default=0)


def json_nests_too_deep(text: str) -> bool:
    # Most bodies have fewer opening brackets than the limit in all: no need to measure them.
    if text.count("[") + text.count("{") <= JSON_MAX_DEPTH:
        return False
    return json_nesting_depth(text) > JSON_MAX_DEPTH


class LimitedJSONParser(JSONParser):
    """JSON bodies are small and shallow: one over DATA_UPLOAD_MAX_MEMORY_SIZE (declared or read)
    is a 413, one nested deeper than JSON_MAX_DEPTH a 400, both before it is parsed."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        request = parser_context.get("request")
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        length = content_length(request.META) if request is not None else 0
        if limit is not None and length > limit:
            raise RequestTooLarge()
        body = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(body) > limit:
            raise RequestTooLarge()
        try:
            text = body.decode(parser_context.get("encoding", settings.DEFAULT_CHARSET))
        except (UnicodeDecodeError, LookupError) as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None
        if json_nests_too_deep(text):
            raise JsonTooDeep()
        try:
            return json.loads(text, parse_constant=json.strict_constant if self.strict else None)
        except (ValueError, RecursionError) as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None


# ---- Idempotency-Key ---------------------------------------------------------------------------

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"  # "true" on a stored response answered again

IDEMPOTENCY_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description=(
        "A unique string (1 to 255 printable ASCII characters, a UUID is ideal) that makes a retried "
        "write safe: the same request again (same user, URL and body: JSON compared by content, uploads by "
        "their files' bytes and the other form fields) with the same key within 24 hours gets the first "
        "request's response again (with `Idempotent-Replayed: true`) and changes nothing. The same key with "
        "a different body answers 422 `idempotency_key_mismatch` and changes nothing. A key still being "
        "processed answers 409 `idempotency_in_progress`; a key used for another URL answers 409 "
        "`idempotency_key_reused`. Failed requests (4xx/5xx) are not stored, so the key can be used again "
        "after fixing the request."
    ),
)


def idempotent(view_method):
    """Wrap a view's POST (or PUT): replay the stored response for a repeated ``Idempotency-Key``."""

    @functools.wraps(view_method)
    def wrapper(self, request, *args, **kwargs):
        from fetalsite.core import idempotency  # a model module: not before the apps are loaded

        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is None:
            return view_method(self, request, *args, **kwargs)
        from fetalsite.core.api_input import request_fingerprint

        claim = idempotency.idempotency_key_claim(
            user=request.user, key=key, request_path=request.path, request_hash=request_fingerprint(request)
        )
        if claim.replay is not None:
            response = Response(claim.replay.response_body, status=claim.replay.response_status)
            response[REPLAYED_HEADER] = "true"
            if claim.replay.response_location:
                response["Location"] = claim.replay.response_location
            return response
        try:
            response = view_method(self, request, *args, **kwargs)
        except BaseException:
            idempotency.idempotency_key_release(record=claim.record)
            raise
        if 200 <= response.status_code < 300:
            idempotency.idempotency_key_complete(
                record=claim.record,
                response_status=response.status_code,
                response_body=response.data,
                response_location=response.get("Location", ""),
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
    help_text=(
        "Only on validation errors (400 `invalid`: each invalid field or query parameter, `non_field_errors` for "
        "the rest) and on the MRN conflicts (409 `mrn_exists`, `patient_details_differ`: what conflicts)."
    ),
)
ErrorSerializer._declared_fields["existing_id"] = serializers.IntegerField(
    required=False,
    help_text="Only on the MRN conflicts (409 `mrn_exists`, `patient_details_differ`): the id of your clinic's "
    "patient registered under that MRN.",
)


# What each error status means; the examples are real answers recorded by the tests (fetalsite.core.api_examples).
_ERRORS = {
    400: "The request is invalid; `fields` says what is wrong with each field or query parameter.",
    401: "No credentials, or an unknown or revoked token.",
    403: "Your role does not allow this action.",
    404: "No such record in your clinic (another clinic's record answers the same).",
    409: "The request conflicts with the record's state, or with another request.",
    413: "The request or one of its files is too large.",
    415: "The request's Content-Type is not accepted here.",
    422: "This Idempotency-Key was already used with a different request body; nothing was changed.",
    429: "Too many requests; wait for the seconds in the `Retry-After` header.",
}


# Every operation answers 400 to a query parameter it does not take (fetalsite.core.api_views).
UNKNOWN_QUERY_PARAMETER = "Unknown query parameter."


def error_responses(*codes: int) -> dict[int, OpenApiResponse]:
    """OpenAPI responses for the given error statuses (401 and 429 belong to every authenticated operation)."""
    return {code: OpenApiResponse(response=ErrorSerializer, description=_ERRORS[code]) for code in codes}


READ_ERRORS = (400, 401, 404, 429)  # 400: a query parameter the operation does not take
WRITE_ERRORS = (400, 401, 403, 404, 413, 415, 429)  # operations with a JSON body
