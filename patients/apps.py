from django.apps import AppConfig


class PatientsConfig(AppConfig):
    name = "patients"
    verbose_name = "Patients, studies and images"

    def ready(self) -> None:
        from patients import receivers  # noqa: F401  (connects the receivers)
