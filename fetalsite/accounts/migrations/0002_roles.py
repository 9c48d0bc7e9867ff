"""Create the role groups with their permissions."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

from fetalsite.accounts.roles import Role, sync_role_groups

# The roles of this migration; later roles need apps this one does not depend on (0004 adds the clinic admin).
ROLES = [Role.SONOGRAPHER, Role.CLINICIAN, Role.INTEGRATOR]


def create_roles(apps, schema_editor):
    # Permissions are normally created after migrate; make sure they exist now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    sync_role_groups(
        group_model=apps.get_model("auth", "Group"),
        permission_model=apps.get_model("auth", "Permission"),
        roles=ROLES,
        app_labels={app_config.label for app_config in apps.get_app_configs()},
    )


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=[role.value for role in ROLES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("patients", "0001_initial"),
        ("classifier", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
