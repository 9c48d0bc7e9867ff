"""Known DICOM senders in the Django admin: a clinic admin registers and edits their own clinic's senders; every
save goes through dicom.services (which checks the acting user and clinic again)."""

from django.contrib import admin

from dicom.models import DicomPeer
from dicom.services import dicom_peer_create, dicom_peer_update
from fetalsite.accounts.admin_base import ClinicScopedAdmin

_FIELDS = ("ae_title", "allowed_addresses", "is_active", "description")


@admin.register(DicomPeer)
class DicomPeerAdmin(ClinicScopedAdmin):
    list_display = ("id", "ae_title", "clinic", "allowed_addresses", "is_active", "description", "updated_at")
    list_filter = ("is_active", ("clinic", admin.RelatedOnlyFieldListFilter))
    search_fields = ("ae_title", "description", "allowed_addresses")

    def get_fields(self, request, obj=None):
        fields = ["clinic", *_FIELDS]
        return fields + ["acting_user", "created_by", "created_at", "updated_at"] if obj is not None else fields

    def get_readonly_fields(self, request, obj=None):
        # A sender stays with its clinic: what it stored is that clinic's, under its account.
        return ("clinic", "acting_user", "created_by", "created_at", "updated_at") if obj is not None else ()

    def has_delete_permission(self, request, obj=None):
        return False  # images and history name its account: switch it off instead

    def save_model(self, request, obj, form, change):
        fields = {name: form.cleaned_data[name] for name in _FIELDS}
        if change:
            dicom_peer_update(peer=obj, updated_by=request.user, **fields)
            return
        created = dicom_peer_create(clinic=form.cleaned_data["clinic"], created_by=request.user, **fields)
        # The admin goes on with its own instance (to log the addition and answer): make it the saved row.
        obj.pk, obj.acting_user_id, obj.created_at = created.pk, created.acting_user_id, created.created_at
        obj._state.adding = False
