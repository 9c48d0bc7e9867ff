from django.contrib import admin, messages
from simple_history.admin import SimpleHistoryAdmin

from classifier.models import ClassificationJob, ModelVersion, Prediction
from classifier.services import model_version_activate
from patients.admin import ClinicScopedAdmin


@admin.register(ModelVersion)
class ModelVersionAdmin(SimpleHistoryAdmin):
    list_display = ("id", "name", "version", "is_active", "review_threshold", "registered_at")
    readonly_fields = [f.name for f in ModelVersion._meta.fields]
    actions = ["activate"]

    def has_add_permission(self, request):
        return False  # register with `manage.py register_models`, which checks the file and its card

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Make the selected version the active model")
    def activate(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version.", messages.ERROR)
            return
        version = model_version_activate(model_version=queryset.get())
        self.message_user(request, f"{version} is now active.")


class ReadOnlyRecordAdmin(ClinicScopedAdmin):
    """Jobs and predictions are written by the worker and reviews; the admin only shows them."""

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ClassificationJob)
class ClassificationJobAdmin(ReadOnlyRecordAdmin):
    list_display = ("id", "image", "model_version", "status", "attempts", "queued_at", "finished_at")
    list_filter = ("status", "model_version")


@admin.register(Prediction)
class PredictionAdmin(ReadOnlyRecordAdmin):
    list_display = ("id", "job", "label", "confidence", "needs_review", "reviewed_label", "reviewed_by")
    list_filter = ("label", "needs_review", "reviewed_label")
