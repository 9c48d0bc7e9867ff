from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Shared plumbing; a Django app only because it owns one model, the API's idempotency keys."""

    name = "fetalsite.core"
    label = "core"
    verbose_name = "Shared API plumbing"
