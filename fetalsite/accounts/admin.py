from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from simple_history.admin import SimpleHistoryAdmin

from fetalsite.accounts.models import Clinic, User


@admin.register(Clinic)
class ClinicAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "created_at")
    search_fields = ("name",)


@admin.register(User)
class UserAdmin(DjangoUserAdmin, SimpleHistoryAdmin):
    list_display = ("username", "clinic", "first_name", "last_name", "is_staff", "is_active")
    list_filter = ("clinic", "groups", "is_staff", "is_active")
    fieldsets = (*DjangoUserAdmin.fieldsets, ("Clinic", {"fields": ("clinic",)}))
    add_fieldsets = (*DjangoUserAdmin.add_fieldsets, ("Clinic", {"fields": ("clinic", "groups")}))
