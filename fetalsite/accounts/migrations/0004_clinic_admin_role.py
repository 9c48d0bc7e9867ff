"""The clinic admin role: the Django admin over one clinic, its access log included."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

from fetalsite.accounts.roles import Role, sync_role_groups


def create_role(apps, schema_editor):
    for app_config in apps.get_app_configs():  # permissions are normally created after migrate
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    sync_role_groups(
        group_model=apps.get_model("auth", "Group"),
        permission_model=apps.get_model("auth", "Permission"),
        roles=[Role.CLINIC_ADMIN],
        app_labels={app_config.label for app_config in apps.get_app_configs()},
    )


def remove_role(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=Role.CLINIC_ADMIN.value).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_history"),
        ("audit", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_role, remove_role)]
