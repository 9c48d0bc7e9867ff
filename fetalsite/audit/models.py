"""The access log: an append-only, hash-chained record of every read of patient data, of replayed
answers, and of refused attempts (security events)."""

from __future__ import annotations

from django.conf import settings
from django.db import connections, models
from django.db.models.expressions import RawSQL
from django.utils import timezone


class AccessLogImmutable(Exception):
    """Raised on any attempt to change or remove an access log entry through the ORM."""


class AccessLogEntryQuerySet(models.QuerySet):
    def for_clinics(self, clinic_ids) -> AccessLogEntryQuerySet:
        return self.filter(clinic_id__in=clinic_ids)

    def showing_patient(self, patient_id: int) -> AccessLogEntryQuerySet:
        """Entries about the patient: those naming them, and lists that showed them."""
        if connections[self.db].vendor == "postgresql":
            listed = models.Q(patient_ids__contains=[patient_id])
        else:
            # SQLite has no JSON containment lookup; json_each reads the list's items.
            table = self.model._meta.db_table  # a constant; the id is a parameter
            sql = f"SELECT e.id FROM {table} e, json_each(e.patient_ids) item WHERE item.value = %s"  # noqa: S608
            listed = models.Q(id__in=RawSQL(sql, [patient_id]))  # noqa: S611
        return self.filter(models.Q(patient_id=patient_id) | listed)

    def update(self, **kwargs):
        raise AccessLogImmutable("Access log entries cannot be changed.")

    def delete(self):
        raise AccessLogImmutable("Access log entries cannot be deleted.")

    # Nothing is ever deleted, so refuse the raw path the deletion collector would use as well.
    def _raw_delete(self, using):
        raise AccessLogImmutable("Access log entries cannot be deleted.")


class AccessLogEntry(models.Model):
    class Action(models.TextChoices):
        VIEW = "VIEW", "View"
        LIST = "LIST", "List"
        DOWNLOAD = "DOWNLOAD", "Download"
        EXPORT = "EXPORT", "Export"
        # A POST answered again from its stored response (a reused Idempotency-Key).
        REPLAY = "REPLAY", "Replay"
        # A security event: a 403, or a 404 for a record that exists in another clinic.
        DENIED = "DENIED", "Denied"

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # Null for anonymous requests; PROTECT keeps a user with log entries from being deleted.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # Copied, so the entry still names the account if it is renamed.
    username = models.CharField(max_length=150, blank=True)
    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    action = models.CharField(max_length=16, choices=Action.choices)
    object_type = models.CharField(max_length=32)
    object_id = models.BigIntegerField(null=True, blank=True)
    # A plain number, not a foreign key: the log outlives and never joins the record it names.
    patient_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    # Every patient a list showed (the page's items), sorted; null when the entry names no list.
    # Nullable, so adding it left older rows (and their hashes) as they were.
    patient_ids = models.JSONField("patients shown", null=True, blank=True)
    path = models.CharField(max_length=2048)
    method = models.CharField(max_length=8)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    # Text, not an inet column, so the hashed value reads back byte for byte on every backend.
    ip = models.CharField("IP address", max_length=45, blank=True)
    request_id = models.CharField(max_length=64, blank=True, db_index=True)
    prev_hash = models.CharField(max_length=64)
    entry_hash = models.CharField(max_length=64, unique=True)

    objects = AccessLogEntryQuerySet.as_manager()

    class Meta:
        verbose_name = "access log entry"
        verbose_name_plural = "access log"
        constraints = [
            # Two entries can never continue the chain from the same place.
            models.UniqueConstraint(fields=["prev_hash"], name="access_log_prev_hash_unique"),
        ]

    def __str__(self) -> str:
        return f"#{self.id} {self.created_at:%Y-%m-%d %H:%M:%S} {self.username or '-'} {self.action} {self.object_type}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AccessLogImmutable("Access log entries cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AccessLogImmutable("Access log entries cannot be deleted.")


class AccessLogHead(models.Model):
    """The single row (id 1) that every append locks: the chain's last hash and its length.

    It also lets the verifier notice entries cut off the end of the chain.
    """

    last_hash = models.CharField(max_length=64)
    length = models.PositiveBigIntegerField(default=0)
    last_entry_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        verbose_name = "access log head"

    def __str__(self) -> str:
        return f"Access log head #{self.id}: {self.length} entries"
