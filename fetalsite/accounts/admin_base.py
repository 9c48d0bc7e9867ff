"""Base classes for every model admin: history is read only, and staff of a clinic see only that clinic.

django-simple-history's own views look records up without the admin's queryset (a record of another clinic is
found through its history) and save whatever is posted to a version's page (a "revert" that needs only view
permission). Here both go through the admin's scoped queryset first, and a version's page is for reading:
records change in the app, through the services and their checks."""

from __future__ import annotations

from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404
from simple_history.admin import SimpleHistoryAdmin

from fetalsite.accounts.models import Clinic
from fetalsite.accounts.selectors import scope_to_user

SAFE_METHODS = ("GET", "HEAD")


class ReadOnlyHistoryAdmin(SimpleHistoryAdmin):
    """History and its versions for whoever may see the record itself; nobody reverts through the admin."""

    def _visible_object(self, request, object_id: str):
        # get_object uses get_queryset, so a record outside the admin's scope is as absent as a missing one.
        obj = self.get_object(request, unquote(object_id))
        if obj is None or not self.has_view_or_change_permission(request, obj):
            raise Http404("No such record.")
        return obj

    def history_view(self, request, object_id, extra_context=None):
        self._visible_object(request, object_id)
        return super().history_view(request, object_id, extra_context)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        self._visible_object(request, object_id)
        if request.method not in SAFE_METHODS:
            raise PermissionDenied("History is read only; change the record itself.")
        return super().history_form_view(request, object_id, version_id, extra_context)

    def revert_disabled(self, request, obj=None) -> bool:
        return True

    def history_form_view_title(self, request, obj):
        return f"View {obj} as it was"


class ClinicScopedAdmin(ReadOnlyHistoryAdmin):
    """Staff who belong to a clinic see only that clinic's records; superusers see all."""

    def get_queryset(self, request):
        return scope_to_user(super().get_queryset(request), user=request.user)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        # A record's clinic is chosen among the clinics its admin may see: their own, or any for a superuser.
        if db_field.name == "clinic":
            clinics = Clinic.objects.all()
            if not request.user.is_superuser:
                clinics = clinics.filter(id=request.user.clinic_id)
            kwargs["queryset"] = clinics
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
