from django.apps import AppConfig


class BiometryConfig(AppConfig):
    name = "biometry"
    verbose_name = "Biometry: head measurements"

    def ready(self) -> None:
        # Measure brain planes once the classifier (below this app) says so: it sends a signal, never imports us.
        from biometry import receivers  # noqa: F401
