"""Roles are Django groups; their permissions are created by a data migration."""

from django.db import models


class Role(models.TextChoices):
    SONOGRAPHER = "sonographer", "Sonographer"
    CLINICIAN = "clinician", "Clinician"
    INTEGRATOR = "integrator", "Integrator"


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
]
ROLE_PERMISSIONS = {
    Role.SONOGRAPHER: SONOGRAPHER_PERMISSIONS,
    Role.CLINICIAN: [*SONOGRAPHER_PERMISSIONS, ("classifier", "review_prediction")],
    Role.INTEGRATOR: SONOGRAPHER_PERMISSIONS,
}


def user_can_review(user) -> bool:
    return user.is_authenticated and user.has_perm("classifier.review_prediction")


def user_is_integrator(user) -> bool:
    return user.is_authenticated and user.groups.filter(name=Role.INTEGRATOR).exists()


def sync_role_groups(*, group_model, permission_model) -> None:
    """Create the role groups and give them exactly their permissions; safe to repeat."""
    for role, perms in ROLE_PERMISSIONS.items():
        group, _ = group_model.objects.get_or_create(name=role.value)
        wanted = [
            permission_model.objects.get(content_type__app_label=app_label, codename=codename)
            for app_label, codename in perms
        ]
        group.permissions.set(wanted)
