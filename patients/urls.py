"""The patients app's routes: its pages, and its API (mounted under /api/v1/ by fetalsite.api_urls)."""

from django.urls import path

from patients import apis, measurement_views, views

urlpatterns = [
    path("", views.HomeView.as_view(), name="home"),
    path("patients/new/", views.PatientCreateView.as_view(), name="patient-create"),
    path("patients/<int:patient_id>/", views.PatientDetailView.as_view(), name="patient-detail"),
    path("patients/<int:patient_id>/edit/", views.PatientUpdateView.as_view(), name="patient-edit"),
    path("patients/<int:patient_id>/studies/new/", views.StudyCreateView.as_view(), name="study-create"),
    path("studies/<int:study_id>/", views.StudyDetailView.as_view(), name="study-detail"),
    path("studies/<int:study_id>/edit/", views.StudyEditView.as_view(), name="study-edit"),
    path("studies/<int:study_id>/sign-off/", views.StudySignOffView.as_view(), name="study-sign-off"),
    path("studies/<int:study_id>/reopen/", views.StudyReopenView.as_view(), name="study-reopen"),
    path("studies/<int:study_id>/upload/", views.StudyUploadView.as_view(), name="study-upload"),
    path("studies/<int:study_id>/images/", views.StudyImagesView.as_view(), name="study-images"),
    path("studies/<int:study_id>/report.pdf", views.StudyReportView.as_view(), name="study-report"),
    path("images/<int:image_id>/file/", views.ImageFileView.as_view(), name="image-file"),
    path("images/<int:image_id>/original/", views.ImageOriginalView.as_view(), name="image-original"),
    path("images/<int:image_id>/preview/", views.ImageFileView.as_view(variant="preview"), name="image-preview"),
    path("images/<int:image_id>/thumbnail/", views.ImageFileView.as_view(variant="thumbnail"), name="image-thumbnail"),
    path("images/<int:image_id>/playback/", views.ImagePlaybackView.as_view(), name="image-playback"),
    path("images/<int:image_id>/heatmap/", views.ImageFileView.as_view(variant="heatmap"), name="image-heatmap"),
    path("images/<int:image_id>/review/", views.PredictionReviewView.as_view(), name="image-review"),
    path("images/<int:image_id>/exclude/", views.ImageExcludeView.as_view(), name="image-exclude"),
    path("images/<int:image_id>/include/", views.ImageIncludeView.as_view(), name="image-include"),
    path("images/<int:image_id>/retry/", views.JobRetryView.as_view(), name="image-retry"),
    path("images/<int:image_id>/history/", views.ImageHistoryView.as_view(), name="image-history"),
    path("images/<int:image_id>/calibrate/", measurement_views.ImageCalibrateView.as_view(), name="image-calibrate"),
    path(
        "measurements/<int:measurement_id>/review/",
        measurement_views.MeasurementReviewView.as_view(),
        name="measurement-review",
    ),
    path(
        "measurements/<int:measurement_id>/history/",
        measurement_views.MeasurementHistoryView.as_view(),
        name="measurement-history",
    ),
]

api_urlpatterns = [
    path("patients/", apis.PatientListCreateApi.as_view(), name="api-patients"),
    path("patients/<int:patient_id>/", apis.PatientDetailApi.as_view(), name="api-patient"),
    # path: an MRN may hold "/" (percent-encoded by the client, decoded before routing).
    path("patients/by-mrn/<path:mrn>/", apis.PatientByMrnApi.as_view(), name="api-patient-by-mrn"),
    path("studies/", apis.StudyListCreateApi.as_view(), name="api-studies"),
    path("studies/<int:study_id>/", apis.StudyDetailApi.as_view(), name="api-study"),
    path("studies/<int:study_id>/sign-off/", apis.StudySignOffApi.as_view(), name="api-study-sign-off"),
    path("studies/<int:study_id>/reopen/", apis.StudyReopenApi.as_view(), name="api-study-reopen"),
    # Before 1.4.0 this closed a study for anyone who could edit it; it is now the sign-off (deprecated alias).
    path("studies/<int:study_id>/complete/", apis.StudyCompleteApi.as_view(), name="api-study-complete"),
    path("studies/<int:study_id>/images/", apis.ImageUploadApi.as_view(), name="api-study-images"),
    path("studies/<int:study_id>/report/", apis.StudyReportApi.as_view(), name="api-study-report"),
    path("images/", apis.ImageListApi.as_view(), name="api-images"),
    path("images/<int:image_id>/", apis.ImageDetailApi.as_view(), name="api-image"),
    path("images/<int:image_id>/file/", apis.ImageFileApi.as_view(), name="api-image-file"),
    path("images/<int:image_id>/original/", apis.ImageOriginalApi.as_view(), name="api-image-original"),
    path("images/<int:image_id>/heatmap/", apis.ImageHeatmapApi.as_view(), name="api-image-heatmap"),
    path("images/<int:image_id>/frames/", apis.ImageFramesApi.as_view(), name="api-image-frames"),
    path("images/<int:image_id>/playback/", apis.ImagePlaybackApi.as_view(), name="api-image-playback"),
    path("images/<int:image_id>/history/", apis.ImageHistoryApi.as_view(), name="api-image-history"),
    path("images/<int:image_id>/review/", apis.PredictionReviewApi.as_view(), name="api-image-review"),
    path("images/<int:image_id>/exclude/", apis.ImageExcludeApi.as_view(), name="api-image-exclude"),
    path("images/<int:image_id>/include/", apis.ImageIncludeApi.as_view(), name="api-image-include"),
    path("images/<int:image_id>/calibration/", apis.ImageCalibrateApi.as_view(), name="api-image-calibration"),
]
