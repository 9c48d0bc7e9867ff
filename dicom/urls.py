"""DICOMweb's routes (PS3.18), mounted at /dicomweb/ by fetalsite.urls."""

from django.urls import path

from dicom import dicomweb_views as views

app_name = "dicomweb"

urlpatterns = [
    path("studies", views.StudiesView.as_view(), name="studies"),
    path("studies/<str:study_uid>", views.StudyView.as_view(), name="study"),
    path("studies/<str:study_uid>/series", views.SeriesView.as_view(), name="series"),
    path("studies/<str:study_uid>/instances", views.InstancesView.as_view(), name="study-instances"),
    path("studies/<str:study_uid>/series/<str:series_uid>/instances", views.InstancesView.as_view(), name="instances"),
    path(
        "studies/<str:study_uid>/series/<str:series_uid>/instances/<str:instance_uid>",
        views.InstanceView.as_view(),
        name="instance",
    ),
    path(
        "studies/<str:study_uid>/series/<str:series_uid>/instances/<str:instance_uid>/rendered",
        views.RenderedView.as_view(),
        name="instance-rendered",
    ),
    path(
        "studies/<str:study_uid>/series/<str:series_uid>/instances/<str:instance_uid>/frames/<str:frames>/rendered",
        views.RenderedView.as_view(),
        name="frame-rendered",
    ),
]
