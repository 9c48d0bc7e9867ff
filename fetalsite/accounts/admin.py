from axes import admin as axes_admin  # registers axes' admins first, so the lock-outs' can be replaced below
from axes.models import AccessAttempt
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group

from fetalsite.accounts.admin_base import ReadOnlyHistoryAdmin
from fetalsite.accounts.models import Clinic, User
from fetalsite.accounts.roles import Role
from fetalsite.accounts.selectors import lockout_list, user_list_manageable
from fetalsite.accounts.services import lockout_clear, user_save_by_admin


@admin.register(Clinic)
class ClinicAdmin(ReadOnlyHistoryAdmin):
    list_display = ("id", "name", "created_at")
    search_fields = ("name",)

    def get_queryset(self, request):
        clinics = super().get_queryset(request)
        return clinics if request.user.is_superuser else clinics.filter(id=request.user.clinic_id)

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return False  # clinics own patient records; deleting one would orphan them


# What a clinic admin edits of an account: who it is, whether it may log in, and its roles. The clinic is theirs,
# staff status follows the clinic admin role, and superuser status and loose permissions are not theirs to give.
CLINIC_ADMIN_FIELDSETS = (
    (None, {"fields": ("username", "password")}),
    ("Personal info", {"fields": ("first_name", "last_name", "email")}),
    ("Access", {"fields": ("is_active", "groups", "clinic", "is_staff")}),
    ("Important dates", {"fields": ("last_login", "date_joined")}),
)
CLINIC_ADMIN_ADD_FIELDSETS = (
    (None, {"classes": ("wide",), "fields": ("username", "usable_password", "password1", "password2", "groups")}),
)
CLINIC_ADMIN_READONLY_FIELDS = ("clinic", "is_staff", "last_login", "date_joined")


@admin.register(User)
class UserAdmin(DjangoUserAdmin, ReadOnlyHistoryAdmin):
    """Clinic admins (staff with a clinic) manage their own clinic's accounts and roles only; every save goes
    through ``user_save_by_admin``, which enforces that whatever the form posted."""

    list_display = ("username", "clinic", "first_name", "last_name", "is_staff", "is_active")
    list_filter = (("clinic", admin.RelatedOnlyFieldListFilter), "groups", "is_staff", "is_active")
    fieldsets = (*DjangoUserAdmin.fieldsets, ("Clinic", {"fields": ("clinic",)}))
    add_fieldsets = (*DjangoUserAdmin.add_fieldsets, ("Clinic", {"fields": ("clinic", "groups")}))

    def get_queryset(self, request):
        return user_list_manageable(user=request.user).prefetch_related("groups")

    def get_list_display(self, request):
        # Clinic admins never see service accounts; a superuser sees them, marked.
        display = super().get_list_display(request)
        return (*display, "is_service_account") if request.user.is_superuser else display

    def has_change_permission(self, request, obj=None):
        # A service account is read-only here: it changes with what it acts for (a DICOM sender's, in that admin).
        # Django's password view asks this too, so no password can be set on one either.
        if obj is not None and obj.is_service_account:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.is_service_account:
            return False
        return super().has_delete_permission(request, obj)

    def get_fieldsets(self, request, obj=None):
        if request.user.is_superuser:
            return super().get_fieldsets(request, obj)
        return CLINIC_ADMIN_FIELDSETS if obj else CLINIC_ADMIN_ADD_FIELDSETS

    def get_readonly_fields(self, request, obj=None):
        if request.user.is_superuser:
            return super().get_readonly_fields(request, obj)
        if obj is not None and obj.pk == request.user.pk:
            return (*CLINIC_ADMIN_READONLY_FIELDS, "groups", "is_active")  # no changing one's own access
        return CLINIC_ADMIN_READONLY_FIELDS

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "groups" and not request.user.is_superuser:
            kwargs["queryset"] = Group.objects.filter(name__in=Role.values)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        groups = form.cleaned_data.get("groups")
        roles = None if groups is None or request.user.is_superuser else [group.name for group in groups]
        user_save_by_admin(user=obj, roles=roles, acting_user=request.user)

    def save_related(self, request, form, formsets, change):
        if request.user.is_superuser:
            super().save_related(request, form, formsets, change)
        # A clinic admin's roles were set by the service; nothing else on the form relates to other records.


# ---- Lock-outs (django-axes) ---------------------------------------------------------------------------
if admin.site.is_registered(AccessAttempt):
    admin.site.unregister(AccessAttempt)


@admin.register(AccessAttempt)
class LockoutAdmin(axes_admin.AccessAttemptAdmin):
    """Failed logins and lock-outs: a clinic admin sees and clears only those of its own clinic's accounts
    (``lockout_list``); deleting a record, one or by the action "Delete selected", lifts its lock-out at once.
    Both go through ``lockout_clear``, which checks the same rule."""

    def get_queryset(self, request):
        return lockout_list(user=request.user)

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not request.user.is_superuser:
            actions.pop("cleanup_expired_attempts", None)  # it cleans every clinic's expired records
        return actions

    def delete_model(self, request, obj):
        lockout_clear(attempts=[obj], cleared_by=request.user)

    def delete_queryset(self, request, queryset):
        lockout_clear(attempts=list(queryset), cleared_by=request.user)
