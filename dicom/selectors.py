"""Reads of known DICOM senders."""

from __future__ import annotations

from django.db.models import QuerySet

from dicom.aetitle import address_allowed, ae_title_normalize
from dicom.models import DicomPeer
from fetalsite.accounts.selectors import scope_to_user


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
