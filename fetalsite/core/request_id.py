"""One request id from an upload (API, page, DICOMweb STOW or a DIMSE association) through its classification
job to the webhook POSTs it causes, so that every log line of one image's path can be found by one value.

The web process takes the caller's ``X-Request-ID`` when it is a plausible id (else makes one) and echoes it; the
job and webhook delivery rows store it; the worker runs each task inside ``request_id_scope`` with the stored
value; ``RequestIdLogFilter`` writes it (and the job id, where known) onto every log record."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

HEADER = "X-Request-ID"
# Letters, digits and . _ : - only: the value goes into logs and headers, so nothing a log parser or an HTTP
# client could mistake for structure (quotes, spaces, newlines), and no longer than the rows' 64 characters.
_VALID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

_request_id: ContextVar[str] = ContextVar("request_id", default="")
_job_id: ContextVar[int | None] = ContextVar("job_id", default=None)


def new_request_id() -> str:
    return uuid.uuid4().hex


def accepted_request_id(value: str | None) -> str:
    """The caller's id when it is well formed, else a new one (an invalid id is replaced, never echoed)."""
    return value if value and _VALID.fullmatch(value) else new_request_id()


def current_request_id() -> str:
    """The id of the request, job or delivery being handled; "" outside any."""
    return _request_id.get()


def current_job_id() -> int | None:
    return _job_id.get()


@contextmanager
def request_id_scope(value: str, *, job_id: int | None = None) -> Iterator[str]:
    """Handle what runs in the block as part of request ``value`` (and, in the worker, of job ``job_id``).

    The previous values are set back on exit rather than reset by token, so a scope held open across a
    generator's yields (pynetdicom's C-FIND) may end in another context without an error."""
    previous = _request_id.get(), _job_id.get()
    _request_id.set(value)
    _job_id.set(job_id)
    try:
        yield value
    finally:
        _request_id.set(previous[0])
        _job_id.set(previous[1])


class RequestIdMiddleware:
    """First in MIDDLEWARE: every later middleware, view and service call, and every log line, sees the id."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = accepted_request_id(request.headers.get(HEADER))
        request.request_id = request_id
        with request_id_scope(request_id):
            response = self.get_response(request)
        response[HEADER] = request_id
        return response


class RequestIdLogFilter(logging.Filter):
    """Adds ``request_id`` (None outside a request) and ``job_id`` (None where unknown) to every record; on the
    handler, so records propagated from any logger get them."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get() or None
        record.job_id = _job_id.get()
        return True
