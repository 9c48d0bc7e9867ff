"""Reads of known DICOM senders."""

from __future__ import annotations

from django.db.models import QuerySet

from dicom.aetitle import address_allowed, ae_title_normalize
from dicom.models import DicomPeer
from dicom.worklist import WorklistCriteria, has_wildcards
from fetalsite.accounts.selectors import scope_to_user
from patients.models import Study


class PeerNotAllowed(Exception):
    """An association the receiver must refuse; the message says why, for the log (never sent to the peer)."""


def dicom_peer_list(*, user) -> QuerySet[DicomPeer]:
    return scope_to_user(DicomPeer.objects.all(), user=user).select_related("clinic").order_by("ae_title", "id")


def dicom_peer_for_association(*, ae_title: str, address: str) -> DicomPeer:
    """The active sender calling as ``ae_title`` from ``address``, with its clinic and acting user.

    This is the receiver's whole notion of who is calling: DICOM has no authentication, so a calling AE title
    that no active sender registered, or an address outside that sender's list, is refused."""
    title = ae_title_normalize(ae_title)
    peer = DicomPeer.objects.select_related("clinic", "acting_user").filter(ae_title=title).first()
    if peer is None:
        raise PeerNotAllowed(f"unknown calling AE title {title!r}")
    if not peer.is_active:
        raise PeerNotAllowed(f"calling AE title {title!r} is registered but not active")
    if not address_allowed(address, peer.allowed_addresses):
        raise PeerNotAllowed(f"calling AE title {title!r} is not allowed from {address}")
    return peer


def worklist_studies(*, clinic_id: int, criteria: WorklistCriteria, limit: int = 500) -> list[Study]:
    """The modality worklist of ``clinic_id``: its OPEN studies with a scheduled date that match ``criteria``
    (scheduled date range, MRN, accession number, patient's name with DICOM wildcards), earliest first."""
    studies = Study.objects.for_clinics([clinic_id]).filter(status=Study.Status.OPEN, scheduled_date__isnull=False)
    if criteria.date_from:
        studies = studies.filter(scheduled_date__gte=criteria.date_from)
    if criteria.date_to:
        studies = studies.filter(scheduled_date__lte=criteria.date_to)
    # A key without wildcards is matched by the database; one with them (rare, and on a clinic's open scheduled
    # studies only) in Python, below.
    for lookup, value in (("patient__mrn", criteria.patient_id), ("accession_number", criteria.accession_number)):
        if value and not has_wildcards(value):
            studies = studies.filter(**{lookup: value})
    found = studies.select_related("patient").order_by("scheduled_date", "id")
    return [study for study in found.iterator() if criteria.matches(study)][:limit]
