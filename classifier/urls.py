"""The classifier's routes: its API (mounted under /api/v1/ by fetalsite.api_urls) and its model page."""

from django.urls import path

from classifier import apis
from classifier.views import ModelInfoView

urlpatterns = [
    path("model/", ModelInfoView.as_view(), name="model-info"),
]

api_urlpatterns = [
    path("jobs/", apis.JobListApi.as_view(), name="api-jobs"),
    path("jobs/<int:job_id>/", apis.JobDetailApi.as_view(), name="api-job"),
    path("jobs/<int:job_id>/retry/", apis.JobRetryApi.as_view(), name="api-job-retry"),
    path("predictions/", apis.PredictionListApi.as_view(), name="api-predictions"),
    path("predictions/<int:prediction_id>/", apis.PredictionDetailApi.as_view(), name="api-prediction"),
    path("model-versions/", apis.ModelVersionListApi.as_view(), name="api-model-versions"),
    path("model-versions/<str:model_version>/", apis.ModelVersionDetailApi.as_view(), name="api-model-version"),
]
