"""Head measurements in the admin: read-only and scoped to the admin's clinic. The worker writes them and
clinicians review them on the study page or through the API (biometry.services), never here."""

from django.contrib import admin

from biometry.models import Measurement, MeasurementJob
from classifier.admin import ReadOnlyRecordAdmin


@admin.register(MeasurementJob)
class MeasurementJobAdmin(ReadOnlyRecordAdmin):
    list_display = ("id", "image", "model_version", "status", "attempts", "queued_at", "finished_at")
    list_filter = ("status", "model_version")


@admin.register(Measurement)
class MeasurementAdmin(ReadOnlyRecordAdmin):
    list_display = ("id", "image", "hc_px", "hc_mm", "calibration_source", "needs_review", "review_state", "created_at")
    list_filter = ("review_state", "needs_review", "calibration_source")
