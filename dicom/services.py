"""Writes of known DICOM senders. The admin (and seed_demo_dicom) call these; nothing else saves a DicomPeer."""

from __future__ import annotations

import logging

from django.db import transaction

from dicom.aetitle import ae_title_normalize
from dicom.models import DicomPeer
from fetalsite.accounts.models import Clinic
from fetalsite.accounts.roles import Role, require_permission
from fetalsite.accounts.services import service_account_create, service_account_set_active

logger = logging.getLogger(__name__)

_EDITABLE = ("ae_title", "allowed_addresses", "is_active", "description")


def _normalized(changes: dict) -> dict:
    if "ae_title" in changes:
        changes["ae_title"] = ae_title_normalize(changes["ae_title"])
    if "allowed_addresses" in changes:
        parts = [part.strip() for part in changes["allowed_addresses"].split(",")]
        changes["allowed_addresses"] = ", ".join(part for part in parts if part)
    return changes


@transaction.atomic
def dicom_peer_create(
    *,
    clinic: Clinic,
    ae_title: str,
    created_by,
    allowed_addresses: str = "",
    is_active: bool = True,
    description: str = "",
) -> DicomPeer:
    """Register a sender for ``clinic``, with the service account (role integrator) the receiver acts as for it."""
    require_permission(created_by, "dicom.add_dicompeer", clinic_id=clinic.id, action="register DICOM senders")
    fields = _normalized(
        dict(ae_title=ae_title, allowed_addresses=allowed_addresses, is_active=is_active, description=description)
    )
    peer = DicomPeer(clinic=clinic, created_by=created_by, **fields)
    # Validate before the account exists, so a bad title leaves no orphan account behind.
    peer.full_clean(exclude=["acting_user"])
    peer.acting_user = service_account_create(
        username_base=f"dicom-{fields['ae_title']}",
        clinic=clinic,
        role=Role.INTEGRATOR,
        label=f"DICOM sender {fields['ae_title']}",
        created_by=created_by,
    )
    if not peer.is_active:  # registered switched off: its account is off too
        peer.acting_user = service_account_set_active(user=peer.acting_user, is_active=False, changed_by=created_by)
    peer._history_user = created_by
    peer.save()
    logger.info("DICOM sender %s registered for clinic %s by %s", peer, clinic.id, created_by)
    return peer


@transaction.atomic
def dicom_peer_update(*, peer: DicomPeer, updated_by, **changes) -> DicomPeer:
    """Change a sender's AE title, addresses, active flag or description; its clinic and account stay."""
    require_permission(updated_by, "dicom.change_dicompeer", clinic_id=peer.clinic_id, action="change DICOM senders")
    unknown = set(changes) - set(_EDITABLE)
    if unknown:
        raise TypeError(f"dicom_peer_update cannot change {', '.join(sorted(unknown))}")
    peer = DicomPeer.objects.select_for_update().get(pk=peer.pk)
    for name, value in _normalized(dict(changes)).items():
        setattr(peer, name, value)
    peer.full_clean()
    peer._history_user = updated_by
    peer.save(update_fields=[*changes, "updated_at"])
    # The account follows the sender, so a switched-off sender cannot act anywhere else either (a token, a login).
    peer.acting_user = service_account_set_active(
        user=peer.acting_user, is_active=peer.is_active, changed_by=updated_by
    )
    logger.info("DICOM sender %s changed by %s: %s", peer, updated_by, ", ".join(sorted(changes)))
    return peer
