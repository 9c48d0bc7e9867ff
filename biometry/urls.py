"""The biometry API's routes, mounted under /api/v1/ by fetalsite.api_urls."""

from django.urls import path

from biometry import apis

api_urlpatterns = [
    path("measurements/<int:measurement_id>/", apis.MeasurementDetailApi.as_view(), name="api-measurement"),
    path(
        "measurements/<int:measurement_id>/review/",
        apis.MeasurementReviewApi.as_view(),
        name="api-measurement-review",
    ),
]
