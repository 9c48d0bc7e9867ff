"""A URLconf with a patient-data page that (wrongly) answers anonymous requests, for the middleware tests."""

from django.http import HttpResponse
from django.urls import path


def open_study(request, study_id: int):
    return HttpResponse("a study anybody can read")


urlpatterns = [path("studies/<int:study_id>/", open_study)]
