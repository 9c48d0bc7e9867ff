from django.apps import AppConfig
from django.db import connections
from django.db.models.signals import post_migrate


def _ensure_chain_head(sender, using="default", **kwargs) -> None:
    from fetalsite.audit.models import AccessLogHead
    from fetalsite.audit.services import access_log_head_ensure

    # Not when migrated back to before the access log existed.
    if AccessLogHead._meta.db_table in connections[using].introspection.table_names():
        access_log_head_ensure(using=using)


class AuditConfig(AppConfig):
    name = "fetalsite.audit"
    label = "audit"
    verbose_name = "Audit: access log"

    def ready(self) -> None:
        # After migrate and after a test database flush, which re-emits post_migrate: appends then find
        # the chain head in place and lock it in one statement.
        post_migrate.connect(_ensure_chain_head, sender=self, dispatch_uid="audit.ensure_chain_head")
