from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords


class Clinic(models.Model):
    name = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    def __str__(self) -> str:
        return f"{self.name} (#{self.id})"


class User(AbstractUser):
    # Superusers may stand outside any clinic; everybody else belongs to exactly one.
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, null=True, blank=True, related_name="users")
    # An account a program acts as (a DICOM sender's): it never logs in, holds no API token, and only the service
    # that owns it changes it, so a clinic admin cannot give it a password and act as the machine.
    is_service_account = models.BooleanField(
        "service account",
        default=False,
        editable=False,
        help_text="Acts for a program (e.g. a DICOM sender); nobody logs in as it, and it changes with its owner.",
    )
    # Who changed a user's clinic, roles or flags, and when; passwords are excluded from history.
    history = HistoricalRecords(excluded_fields=["password", "last_login"])

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
        constraints = [
            models.CheckConstraint(
                condition=Q(is_superuser=True) | Q(clinic__isnull=False),
                name="user_has_clinic_unless_superuser",
                violation_error_message="Every user except a superuser must belong to a clinic.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.username} (#{self.id})"
