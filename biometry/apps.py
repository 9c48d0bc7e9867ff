from django.apps import AppConfig


class BiometryConfig(AppConfig):
    name = "biometry"
    verbose_name = "Biometry: head measurements"

    def ready(self) -> None:
        # Measure brain planes once the classifier (below this app) says so: it sends a signal, never imports us.
        # And the measurement.* webhook events: their payloads and examples join the classifier's event table.
        from biometry import receivers, webhook_events  # noqa: F401
