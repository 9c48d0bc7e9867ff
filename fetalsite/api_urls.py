"""The API root: /api/v1/. Paths and shapes here are stable; extend, never break."""

from django.urls import path

from classifier.apis import JobDetailApi
from fetalsite.accounts.apis import TokenObtainApi
from patients.apis import (
    ImageDetailApi,
    ImageUploadApi,
    PatientDetailApi,
    PatientListCreateApi,
    StudyDetailApi,
    StudyListCreateApi,
)

urlpatterns = [
    path("auth/token/", TokenObtainApi.as_view(), name="api-token"),
    path("patients/", PatientListCreateApi.as_view(), name="api-patients"),
    path("patients/<int:patient_id>/", PatientDetailApi.as_view(), name="api-patient"),
    path("studies/", StudyListCreateApi.as_view(), name="api-studies"),
    path("studies/<int:study_id>/", StudyDetailApi.as_view(), name="api-study"),
    path("studies/<int:study_id>/images/", ImageUploadApi.as_view(), name="api-study-images"),
    path("images/<int:image_id>/", ImageDetailApi.as_view(), name="api-image"),
    path("jobs/<int:job_id>/", JobDetailApi.as_view(), name="api-job"),
]
