"""The API root: /api/v1/. Paths and shapes here are stable; extend, never break."""

from django.urls import path, re_path

from classifier.apis import (
    JobDetailApi,
    JobListApi,
    JobRetryApi,
    ModelVersionDetailApi,
    ModelVersionListApi,
    PredictionDetailApi,
    PredictionListApi,
    PredictionReviewApi,
)
from fetalsite.accounts.apis import TokenObtainApi, TokenRotateApi
from fetalsite.core.api_errors import api_not_found
from patients.apis import (
    ImageDetailApi,
    ImageFileApi,
    ImageHistoryApi,
    ImageListApi,
    ImageUploadApi,
    PatientDetailApi,
    PatientListCreateApi,
    StudyCompleteApi,
    StudyDetailApi,
    StudyListCreateApi,
)

urlpatterns = [
    path("auth/token/", TokenObtainApi.as_view(), name="api-token"),
    path("auth/token/rotate/", TokenRotateApi.as_view(), name="api-token-rotate"),
    path("patients/", PatientListCreateApi.as_view(), name="api-patients"),
    path("patients/<int:patient_id>/", PatientDetailApi.as_view(), name="api-patient"),
    path("studies/", StudyListCreateApi.as_view(), name="api-studies"),
    path("studies/<int:study_id>/", StudyDetailApi.as_view(), name="api-study"),
    path("studies/<int:study_id>/complete/", StudyCompleteApi.as_view(), name="api-study-complete"),
    path("studies/<int:study_id>/images/", ImageUploadApi.as_view(), name="api-study-images"),
    path("images/", ImageListApi.as_view(), name="api-images"),
    path("images/<int:image_id>/", ImageDetailApi.as_view(), name="api-image"),
    path("images/<int:image_id>/file/", ImageFileApi.as_view(), name="api-image-file"),
    path("images/<int:image_id>/history/", ImageHistoryApi.as_view(), name="api-image-history"),
    path("images/<int:image_id>/review/", PredictionReviewApi.as_view(), name="api-image-review"),
    path("jobs/", JobListApi.as_view(), name="api-jobs"),
    path("jobs/<int:job_id>/", JobDetailApi.as_view(), name="api-job"),
    path("jobs/<int:job_id>/retry/", JobRetryApi.as_view(), name="api-job-retry"),
    path("predictions/", PredictionListApi.as_view(), name="api-predictions"),
    path("predictions/<int:prediction_id>/", PredictionDetailApi.as_view(), name="api-prediction"),
    path("model-versions/", ModelVersionListApi.as_view(), name="api-model-versions"),
    path("model-versions/<str:model_version>/", ModelVersionDetailApi.as_view(), name="api-model-version"),
    # Anything else under /api/v1/ is a JSON 404, never Django's HTML page.
    re_path(r"^[\s\S]*$", api_not_found),  # [\s\S]: also paths with a newline in them
]
