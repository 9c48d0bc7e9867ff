from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from simple_history.admin import SimpleHistoryAdmin

from fetalsite.accounts.models import Clinic, User
from fetalsite.accounts.roles import Role


@admin.register(Clinic)
class ClinicAdmin(SimpleHistoryAdmin):
    list_display = ("id", "name", "created_at")
    search_fields = ("name",)

    def get_queryset(self, request):
        clinics = super().get_queryset(request)
        return clinics if request.user.is_superuser else clinics.filter(id=request.user.clinic_id)

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return False  # clinics own patient records; deleting one would orphan them


@admin.register(User)
class UserAdmin(DjangoUserAdmin, SimpleHistoryAdmin):
    """Clinic admins (staff with a clinic) manage their own clinic's users and roles only."""

    list_display = ("username", "clinic", "first_name", "last_name", "is_staff", "is_active")
    list_filter = ("clinic", "groups", "is_staff", "is_active")
    fieldsets = (*DjangoUserAdmin.fieldsets, ("Clinic", {"fields": ("clinic",)}))
    add_fieldsets = (*DjangoUserAdmin.add_fieldsets, ("Clinic", {"fields": ("clinic", "groups")}))

    def get_queryset(self, request):
        users = super().get_queryset(request)
        return users if request.user.is_superuser else users.filter(clinic_id=request.user.clinic_id)

    def get_readonly_fields(self, request, obj=None):
        if request.user.is_superuser:
            return super().get_readonly_fields(request, obj)
        return ("is_superuser", "user_permissions", "last_login", "date_joined")

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "clinic" and not request.user.is_superuser:
            kwargs["queryset"] = Clinic.objects.filter(id=request.user.clinic_id)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "groups" and not request.user.is_superuser:
            kwargs["queryset"] = Group.objects.filter(name__in=Role.values)
        return super().formfield_for_manytomany(db_field, request, **kwargs)
