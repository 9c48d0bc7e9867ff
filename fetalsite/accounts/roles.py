"""Roles are Django groups; their permissions are created by a data migration."""

from django.conf import settings
from django.core import checks
from django.core.exceptions import PermissionDenied
from django.db import models


class Role(models.TextChoices):
    SONOGRAPHER = "sonographer", "Sonographer"
    CLINICIAN = "clinician", "Clinician"
    INTEGRATOR = "integrator", "Integrator"
    CLINIC_ADMIN = "clinic_admin", "Clinic admin"


# What each role may do, as (app_label, codename) permissions.
SONOGRAPHER_PERMISSIONS = [
    ("patients", "view_patient"),
    ("patients", "add_patient"),
    ("patients", "change_patient"),
    ("patients", "view_study"),
    ("patients", "add_study"),
    ("patients", "change_study"),
    ("patients", "view_ultrasoundimage"),
    ("patients", "add_ultrasoundimage"),
    ("classifier", "view_classificationjob"),
    ("classifier", "view_prediction"),
    ("classifier", "view_modelversion"),
    ("biometry", "view_measurementjob"),
    ("biometry", "view_measurement"),
]
# In the Django admin (with is_staff), every view scoped to the admin's own clinic: the clinic's users and their
# roles, a read-only view of its records, and its access log. Clinical records are changed in the app, by services.
CLINIC_ADMIN_PERMISSIONS = [
    ("accounts", "view_clinic"),
    ("accounts", "view_user"),
    ("accounts", "add_user"),
    ("accounts", "change_user"),
    ("patients", "view_patient"),
    ("patients", "view_study"),
    ("patients", "view_ultrasoundimage"),
    ("classifier", "view_classificationjob"),
    ("classifier", "view_prediction"),
    ("classifier", "view_modelversion"),
    ("biometry", "view_measurementjob"),
    ("biometry", "view_measurement"),
    ("audit", "view_accesslogentry"),
    # The clinic's known DICOM senders (dicom.DicomPeer): registered and changed through dicom.services.
    ("dicom", "view_dicompeer"),
    ("dicom", "add_dicompeer"),
    ("dicom", "change_dicompeer"),
    # Failed logins and lock-outs (django-axes) of the clinic's accounts: seen, and cleared by deleting them.
    ("axes", "view_accessattempt"),
    ("axes", "delete_accessattempt"),
]
ROLE_PERMISSIONS = {
    Role.SONOGRAPHER: SONOGRAPHER_PERMISSIONS,
    # Whoever reviews a plane reviews its head measurement too (biometry.services.measurement_review).
    Role.CLINICIAN: [
        *SONOGRAPHER_PERMISSIONS,
        ("classifier", "review_prediction"),
        ("biometry", "review_measurement"),
    ],
    Role.INTEGRATOR: SONOGRAPHER_PERMISSIONS,
    Role.CLINIC_ADMIN: CLINIC_ADMIN_PERMISSIONS,
}


def user_can_review(user) -> bool:
    return user.is_authenticated and user.has_perm("classifier.review_prediction")


def user_is_integrator(user) -> bool:
    return user.is_authenticated and user.groups.filter(name=Role.INTEGRATOR).exists()


def api_token_roles() -> list[str]:
    """The role names whose members may hold an API token (settings.API_TOKEN_ROLES)."""
    return list(settings.API_TOKEN_ROLES)


def check_api_token_settings(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """A misspelt role would silently refuse every token; a TTL under a day would expire them at once."""
    errors: list[checks.CheckMessage] = []
    unknown = sorted(set(settings.API_TOKEN_ROLES) - set(Role.values))
    if unknown:
        errors.append(
            checks.Error(
                f"API_TOKEN_ROLES names unknown roles: {', '.join(unknown)}.",
                hint=f"Use some of: {', '.join(Role.values)}.",
                id="accounts.E001",
            )
        )
    if settings.API_TOKEN_TTL_DAYS < 1:
        errors.append(checks.Error("API_TOKEN_TTL_DAYS must be at least 1.", id="accounts.E002"))
    return errors


def sync_role_groups(*, group_model, permission_model, roles=None, app_labels=None) -> None:
    """Create the role groups (all, or ``roles``) and give them exactly their permissions; safe to repeat.

    ``app_labels``: only those apps' permissions. A migration passes the apps migrated so far (an app added later,
    like dicom, may not have its tables yet); post_migrate then syncs every role with all of its permissions."""
    for role in roles or ROLE_PERMISSIONS:
        perms = [(app, codename) for app, codename in ROLE_PERMISSIONS[role] if app_labels is None or app in app_labels]
        group, _ = group_model.objects.get_or_create(name=role.value)
        wanted = [
            permission_model.objects.get(content_type__app_label=app_label, codename=codename)
            for app_label, codename in perms
        ]
        group.permissions.set(wanted)


def require_permission(user, perm: str, *, clinic_id: int | None = None, action: str) -> None:
    """The one check every writing service makes: the acting user holds ``perm`` and, for a record of a clinic,
    belongs to that clinic (superusers to any). Pages, the API, the admin, commands and receivers all end here."""
    if not (user is not None and user.is_authenticated and user.is_active and user.has_perm(perm)):
        raise PermissionDenied(f"Your role does not allow you to {action}.")
    if clinic_id is not None and not user.is_superuser and user.clinic_id != clinic_id:
        # Same words as a missing record: another clinic's ids leak nothing.
        raise PermissionDenied(f"Your role does not allow you to {action}.")
