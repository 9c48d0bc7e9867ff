"""Known DICOM senders: the calling AE titles the receiver accepts, and the clinic each one stores into."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from simple_history.models import HistoricalRecords

from dicom.aetitle import AE_TITLE_MAX_LENGTH, validate_ae_title, validate_networks


class DicomPeerQuerySet(models.QuerySet):
    def for_clinics(self, clinic_ids) -> DicomPeerQuerySet:
        return self.filter(clinic_id__in=clinic_ids)


class DicomPeer(models.Model):
    """An ultrasound machine, PACS or router allowed to send to the receiver. DICOM has no authentication: the
    calling AE title names the sender (and so its clinic), and the optional address list narrows where from."""

    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, related_name="dicom_peers")
    ae_title = models.CharField(
        "calling AE title",
        max_length=AE_TITLE_MAX_LENGTH,
        validators=[validate_ae_title],
        help_text="The AE title the sender calls from (1 to 16 characters, no backslash); unique on this server, "
        "because it is what says which clinic the images belong to.",
    )
    allowed_addresses = models.CharField(
        max_length=500,
        blank=True,
        validators=[validate_networks],
        help_text="IP addresses or networks (CIDR) the sender may connect from, separated by commas; "
        "empty: any address.",
    )
    is_active = models.BooleanField("active", default=True, help_text="Untick to refuse this sender's associations.")
    description = models.CharField(max_length=200, blank=True, help_text="e.g. the machine's model and room.")
    # The account the receiver acts as for this sender: services check its role and clinic like anybody's, and
    # history names it. Created with the peer; it has no usable password, so nobody logs in as it.
    acting_user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="dicom_peer", editable=False
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    objects = DicomPeerQuerySet.as_manager()

    class Meta:
        verbose_name = "DICOM sender"
        constraints = [
            models.UniqueConstraint(
                fields=["ae_title"],
                name="dicom_peer_ae_title_unique",
                violation_error_message="Another sender is registered with this AE title.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.ae_title} (#{self.id})"
