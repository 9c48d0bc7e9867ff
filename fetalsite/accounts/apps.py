from django.apps import AppConfig, apps
from django.core import checks
from django.db.models.signals import post_migrate, post_save, pre_save


def _sync_roles(sender, **kwargs) -> None:
    from django.contrib.auth.management import create_permissions
    from django.contrib.auth.models import Group, Permission

    from fetalsite.accounts.roles import ROLE_PERMISSIONS, sync_role_groups

    # post_migrate reaches this app before the apps whose permissions the roles use.
    for app_label in {label for perms in ROLE_PERMISSIONS.values() for label, _ in perms}:
        create_permissions(apps.get_app_config(app_label), verbosity=0, using=kwargs.get("using", "default"))
    sync_role_groups(group_model=Group, permission_model=Permission)


class AccountsConfig(AppConfig):
    name = "fetalsite.accounts"
    label = "accounts"
    verbose_name = "Accounts and clinics"

    def ready(self) -> None:
        # Also after a test database flush, which re-emits post_migrate but does not rerun migrations.
        post_migrate.connect(_sync_roles, sender=self, dispatch_uid="accounts.sync_roles")

        from fetalsite.accounts import signals
        from fetalsite.accounts.roles import check_api_token_settings

        user_model = self.get_model("User")
        pre_save.connect(signals.note_credential_change, sender=user_model, dispatch_uid="accounts.token_pre")
        post_save.connect(
            signals.revoke_token_after_credential_change, sender=user_model, dispatch_uid="accounts.token_post"
        )
        checks.register(check_api_token_settings)
