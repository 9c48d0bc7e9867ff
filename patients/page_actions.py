"""How a page action answers: HTML always, never JSON.

The study page's script (``static/js/study.js``) marks its requests with the header
``X-Requested-With: fetch``; such a request gets an HTML partial (an image card, the poll's fragment)
and, when refused, ``patients/_error.html``: the code and message that ``error_describe`` gives the API
too, with the same HTTP status. A plain form post (no script) gets a redirect with a flash message, so
the page keeps working without JavaScript.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.utils.cache import patch_vary_headers

from fetalsite.accounts.mixins import StaffPageMixin
from fetalsite.core.api_errors import ErrorDescription, error_describe
from fetalsite.core.errors import ApplicationError

PARTIAL_HEADER = "X-Requested-With"
PARTIAL_HEADER_VALUE = "fetch"

# What a page action may refuse with; anything else is a bug and gets Django's 500 page.
PAGE_ERRORS = (ValidationError, ApplicationError, PermissionDenied, Http404)


def is_partial_request(request: HttpRequest) -> bool:
    """A request from the page's script, which swaps the answer into the page."""
    return request.headers.get(PARTIAL_HEADER) == PARTIAL_HEADER_VALUE


def partial_response(request: HttpRequest, template: str, context: dict, *, status: int = 200) -> HttpResponse:
    response = HttpResponse(render_to_string(template, context, request=request), status=status)
    # The same URL answers a page (redirect) or a partial, by the header.
    patch_vary_headers(response, [PARTIAL_HEADER])
    return response


def error_partial(request: HttpRequest, described: ErrorDescription) -> HttpResponse:
    return partial_response(
        request,
        "patients/_error.html",
        {"code": described.code, "message": described.message},
        status=described.status,
    )


class PageActionMixin(StaffPageMixin):
    """A POST (or poll) on a page: refusals speak the API's error vocabulary.

    For the script, a refusal is ``patients/_error.html`` with the error's status. For a plain form, a
    rule or validation error is a flash message and a redirect to ``self.return_url`` (set by the view
    once it has loaded its object); a 403 or 404 stays Django's own page."""

    flash_prefix = ""  # "Upload refused: "
    return_url: str | None = None

    def dispatch(self, request, *args, **kwargs):
        try:
            response = super().dispatch(request, *args, **kwargs)
        except PAGE_ERRORS as error:
            return self.refuse(request, error)
        patch_vary_headers(response, [PARTIAL_HEADER])
        return response

    def refuse(self, request: HttpRequest, error: Exception) -> HttpResponse:
        described = error_describe(error)
        if is_partial_request(request):
            return error_partial(request, described)
        if isinstance(error, PermissionDenied | Http404) or self.return_url is None:
            raise error
        messages.error(request, f"{self.flash_prefix}{described.message}")
        return redirect(self.return_url)
