from django.contrib import admin, messages

from classifier.models import ClassificationJob, ModelVersion, Prediction, WebhookDelivery, WebhookEndpoint
from classifier.services import model_version_activate, webhook_delivery_resend
from classifier.webhooks import webhook_endpoint_save
from fetalsite.accounts.admin_base import ClinicScopedAdmin, ReadOnlyHistoryAdmin
from fetalsite.accounts.models import Clinic
from fetalsite.accounts.selectors import scope_to_user


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyHistoryAdmin):
    list_display = ("id", "name", "version", "is_active", "review_threshold", "registered_at")
    readonly_fields = [f.name for f in ModelVersion._meta.fields]
    actions = ["activate"]

    def has_add_permission(self, request):
        return False  # register with `manage.py register_models`, which checks the file and its card

    def has_delete_permission(self, request, obj=None):
        return False

    def has_activate_permission(self, request) -> bool:
        return request.user.is_superuser  # the active model classifies every clinic's images

    @admin.action(description="Make the selected version the active model for every clinic", permissions=["activate"])
    def activate(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version.", messages.ERROR)
            return
        version = model_version_activate(model_version=queryset.get(), activated_by=request.user)
        self.message_user(request, f"{version} is now the active model for every clinic's new images.")


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


# ---- Webhooks --------------------------------------------------------------------------------


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ClinicScopedAdmin):
    list_display = ("id", "clinic", "url", "is_active", "events", "created_at")
    list_filter = ("is_active", ("clinic", admin.RelatedOnlyFieldListFilter))
    search_fields = ("url", "description")
    readonly_fields = ("created_at",)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "clinic":
            clinics = Clinic.objects.all()
            if not request.user.is_superuser:
                clinics = clinics.filter(id=request.user.clinic_id)
            kwargs["queryset"] = clinics
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        webhook_endpoint_save(endpoint=obj)

    def has_delete_permission(self, request, obj=None):
        return False  # deliveries refer to it: switch it off instead


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "event_type",
        "endpoint",
        "status",
        "attempts",
        "last_response_code",
        "created_at",
        "last_attempt_at",
        "delivered_at",
    )
    list_filter = ("status", "event_type")
    search_fields = ("event_id",)
    actions = ["resend"]

    def get_queryset(self, request):
        return scope_to_user(super().get_queryset(request).select_related("endpoint"), user=request.user)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in WebhookDelivery._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Send the selected deliveries again now")
    def resend(self, request, queryset):
        for delivery in queryset:
            webhook_delivery_resend(delivery=delivery)
        self.message_user(request, f"{queryset.count()} deliveries queued again.")
