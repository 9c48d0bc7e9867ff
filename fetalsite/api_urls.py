"""The API root: /api/v1/. Paths and shapes here are stable; extend, never break.

Each app owns its routes (its ``urls.api_urlpatterns``); this root only mounts them, then answers anything
else under /api/v1/ with a JSON 404."""

from django.urls import include, path, re_path

from biometry import urls as biometry_urls
from classifier import urls as classifier_urls
from fetalsite.accounts import urls as accounts_urls
from fetalsite.core.api_errors import api_not_found
from patients import urls as patients_urls

urlpatterns = [
    path("", include(accounts_urls.api_urlpatterns)),
    path("", include(patients_urls.api_urlpatterns)),
    path("", include(classifier_urls.api_urlpatterns)),
    path("", include(biometry_urls.api_urlpatterns)),
    # Anything else under /api/v1/ is a JSON 404, never Django's HTML page.
    re_path(r"^[\s\S]*$", api_not_found),  # [\s\S]: also paths with a newline in them
]
