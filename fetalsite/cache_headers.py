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
from django.urls import reverse

NO_STORE = "no-store"
IMAGE_CACHE_CONTROL = "private, no-cache"


class CacheControlMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response
        self._cacheable_prefixes: tuple[str, ...] | None = None

    def cacheable_prefixes(self) -> tuple[str, ...]:
        # Resolved on the first request: the URLconf is not loaded yet when middleware is built.
        if self._cacheable_prefixes is None:
            self._cacheable_prefixes = (settings.STATIC_URL, reverse("api-schema"), reverse("api-docs"))
        return self._cacheable_prefixes

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not response.has_header("Cache-Control") and not request.path.startswith(self.cacheable_prefixes()):
            response["Cache-Control"] = NO_STORE
        return response
