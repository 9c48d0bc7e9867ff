"""The access log in the admin: read only for everybody, scoped to the clinic, exportable as CSV."""

from __future__ import annotations

import csv

from django.contrib import admin
from django.http import StreamingHttpResponse
from django.utils import timezone

from fetalsite.audit.models import AccessLogEntry
from fetalsite.audit.selectors import access_log_csv_rows, access_log_list
from fetalsite.audit.services import access_log_record
from fetalsite.core.client_ip import client_ip


def _patient_id(value: str | None) -> int | None:
    """The id in ?patient_id=, or None: ASCII digits only ("²" is a digit to str.isdigit, not to int), and
    short enough for a bigint."""
    if value and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    return None


class PatientIdFilter(admin.SimpleListFilter):
    """Filter by patient id: pick one of the latest patients or put ?patient_id=<id> in the address."""

    title = "patient id"
    parameter_name = "patient_id"

    def lookups(self, request, model_admin):
        ids = (
            model_admin.get_queryset(request)
            .exclude(patient_id=None)
            .order_by("-id")
            .values_list("patient_id", flat=True)[:500]
        )
        latest = list(dict.fromkeys(ids))[:20]
        chosen = _patient_id(self.value())
        if chosen is not None and chosen not in latest:
            latest.insert(0, chosen)
        return [(str(patient_id), f"Patient #{patient_id}") for patient_id in latest]

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        patient_id = _patient_id(value)
        # A list that showed the patient counts as well as an entry about them alone.
        return queryset.showing_patient(patient_id) if patient_id is not None else queryset.none()


class _Echo:
    def write(self, value):
        return value


@admin.action(description="Export selected entries as CSV", permissions=["view"])
def export_csv(modeladmin, request, queryset):
    access_log_record(
        user=request.user,
        action=AccessLogEntry.Action.EXPORT,
        object_type="access_log",
        path=request.path,
        method=request.method,
        status_code=200,
        ip=client_ip(request),
        request_id=getattr(request, "request_id", ""),
    )
    writer = csv.writer(_Echo())
    rows = (writer.writerow(row) for row in access_log_csv_rows(entries=queryset))
    response = StreamingHttpResponse(rows, content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="access-log-{stamp}.csv"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


@admin.register(AccessLogEntry)
class AccessLogEntryAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "created_at",
        "username",
        "clinic",
        "action",
        "object_type",
        "object_id",
        "patient_id",
        "status_code",
        "ip",
        "request_id",
    )
    list_filter = (
        ("user", admin.RelatedOnlyFieldListFilter),
        PatientIdFilter,
        ("clinic", admin.RelatedOnlyFieldListFilter),
        "action",
        "object_type",
        "created_at",
    )
    date_hierarchy = "created_at"
    search_fields = ("username", "=request_id", "path")
    actions = [export_csv]
    list_select_related = ("clinic",)
    readonly_fields = [field.name for field in AccessLogEntry._meta.fields]

    def get_queryset(self, request):
        return access_log_list(user=request.user)

    # Append only: nobody, superusers included, adds, changes or deletes an entry here.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
