from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from fetalsite.health import health
from fetalsite.metrics_endpoint import metrics


class FaviconView(RedirectView):
    permanent = True
    http_method_names = ["get", "head"]

    def get_redirect_url(self, *args, **kwargs) -> str:
        return static("img/favicon.svg")  # resolved per request: the manifest's hashed name in production


urlpatterns = [
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("health/", health, name="health"),
    path("metrics", metrics, name="metrics"),  # Prometheus' default path; token or network only
    # Browsers ask for /favicon.ico whatever the page links: send them to the SVG the pages name (no 404 logged).
    path("favicon.ico", FaviconView.as_view(), name="favicon"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("fetalsite.api_urls")),
    path("dicomweb/", include("dicom.urls")),  # DICOMweb (PS3.18): docs/dicom.md
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("classifier.urls")),
    path("", include("patients.urls")),
]

handler404 = "fetalsite.core.api_errors.not_found"
handler500 = "fetalsite.core.api_errors.server_error"
