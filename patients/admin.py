from django.contrib import admin

from fetalsite.accounts.admin_base import ClinicScopedAdmin
from patients.models import DicomInstance, Patient, Study, UltrasoundImage


@admin.register(Patient)
class PatientAdmin(ClinicScopedAdmin):
    list_display = ("id", "mrn", "family_name", "given_name", "birth_date", "clinic")
    list_filter = (("clinic", admin.RelatedOnlyFieldListFilter),)  # names only the clinics the admin may see
    search_fields = ("mrn", "family_name", "given_name")
    readonly_fields = ("clinic", "created_by", "created_at", "updated_at")


@admin.register(Study)
class StudyAdmin(ClinicScopedAdmin):
    list_display = ("id", "patient", "exam_date", "status", "created_by", "created_at")
    list_filter = ("status", "exam_date")
    search_fields = ("patient__mrn", "patient__family_name")
    # The DICOM UIDs come from the files: editing them would detach the study from what the machines send.
    readonly_fields = ("patient", "study_instance_uid", "accession_number", "created_by", "created_at", "updated_at")


class DicomInstanceInline(admin.StackedInline):
    model = DicomInstance
    fields = readonly_fields = [f.name for f in DicomInstance._meta.fields if f.name != "id"]
    can_delete = False
    extra = 0

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(UltrasoundImage)
class UltrasoundImageAdmin(ClinicScopedAdmin):
    list_display = ("id", "study", "original_filename", "format", "width", "height", "uploaded_by", "uploaded_at")
    list_filter = ("format",)
    search_fields = ("original_filename", "sha256")
    # An uploaded image is evidence: nothing about it may be edited.
    readonly_fields = [f.name for f in UltrasoundImage._meta.fields]
    inlines = [DicomInstanceInline]  # an image that came as a DICOM file: its DICOM facts

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
