"""Cache-Control on every answer that may carry patient data.

Pages, their JSON fragments and the API answer about patients, studies and images, so nothing may
keep a copy: not a proxy, and not the browser of a shared workstation after its user logged off.
Every response gets ``no-store`` unless its view chose its own Cache-Control. Left alone: static
files (WhiteNoise answers those before this middleware runs; the prefix check covers other setups)
and the OpenAPI schema and its docs page, which hold no patient data.

Image bytes (the file, preview and heatmap pages and the API's file download) set
``IMAGE_CACHE_CONTROL`` themselves: ``private`` keeps them out of every shared cache, and ``no-cache``
makes the browser ask the server before each reuse, so the clinic check, the idle timeout and the
access log apply to every view of an image, and a logged-off or revoked user is not shown a copy
from the browser's cache (``max-age=3600`` before: an hour of reuse with no check and no log entry).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

NO_STORE = "no-store"
IMAGE_CACHE_CONTROL = "private, no-cache"
# URL names of the answers that hold no patient data and keep their own caching.
SCHEMA_URL_NAMES = frozenset({"api-schema", "api-docs"})


class CacheControlMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not response.has_header("Cache-Control") and not self.holds_no_patient_data(request):
            response["Cache-Control"] = NO_STORE
        return response

    @staticmethod
    def holds_no_patient_data(request: HttpRequest) -> bool:
        # By URL name, not path, so that whatever URLconf serves the request decides (tests swap it).
        match = getattr(request, "resolver_match", None)
        return request.path.startswith(settings.STATIC_URL) or (
            match is not None and match.url_name in SCHEMA_URL_NAMES
        )
