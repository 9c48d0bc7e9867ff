from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from fetalsite.health import health

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("health/", health, name="health"),
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
