"""DICOMweb's routes (PS3.18), mounted at /dicomweb/ by fetalsite.urls."""

from django.urls import path

from dicom import dicomweb_views as views

app_name = "dicomweb"

STUDY = "studies/<str:study_uid>"
SERIES = f"{STUDY}/series/<str:series_uid>"
INSTANCE = f"{SERIES}/instances/<str:instance_uid>"

urlpatterns = [
    path("studies", views.StudiesView.as_view(), name="studies"),
    path(STUDY, views.StudyView.as_view(), name="study"),
    path(f"{STUDY}/metadata", views.MetadataView.as_view(), name="study-metadata"),
    path(f"{STUDY}/series", views.SeriesView.as_view(), name="series"),
    path(f"{STUDY}/instances", views.InstancesView.as_view(), name="study-instances"),
    path(SERIES, views.SeriesRetrieveView.as_view(), name="series-retrieve"),
    path(f"{SERIES}/metadata", views.MetadataView.as_view(), name="series-metadata"),
    path(f"{SERIES}/instances", views.InstancesView.as_view(), name="instances"),
    path(INSTANCE, views.InstanceView.as_view(), name="instance"),
    path(f"{INSTANCE}/metadata", views.MetadataView.as_view(), name="instance-metadata"),
    path(f"{INSTANCE}/rendered", views.RenderedView.as_view(), name="instance-rendered"),
    path(f"{INSTANCE}/frames/<str:frames>", views.FramesView.as_view(), name="frames"),
    path(f"{INSTANCE}/frames/<str:frames>/rendered", views.RenderedView.as_view(), name="frame-rendered"),
]
