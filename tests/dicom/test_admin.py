"""A clinic admin registers and edits their clinic's DICOM senders in the Django admin (through the services)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from dicom.models import DicomPeer
from dicom.services import dicom_peer_create
from fetalsite.accounts.roles import Role
from tests.factories import UserFactory


@pytest.fixture
def north_admin(north):
    return UserFactory(username="admin_north", clinic=north, is_staff=True, role=Role.CLINIC_ADMIN)


def _form(clinic, **fields) -> dict:
    return {"clinic": clinic.id, "ae_title": "US_ROOM_3", "allowed_addresses": "10.1.2.3", "is_active": "on",
            "description": "Room 3", **fields}  # fmt: skip


def test_a_clinic_admin_adds_and_changes_a_sender(client, north, north_admin):
    client.force_login(north_admin)
    response = client.post(reverse("admin:dicom_dicompeer_add"), _form(north))
    assert response.status_code == 302, response.content
    peer = DicomPeer.objects.get()
    assert (peer.clinic, peer.ae_title, peer.created_by) == (north, "US_ROOM_3", north_admin)
    assert peer.acting_user.groups.filter(name=Role.INTEGRATOR).exists()
    response = client.post(reverse("admin:dicom_dicompeer_change", args=[peer.pk]), _form(north, is_active=""))
    assert response.status_code == 302
    peer.refresh_from_db()
    assert not peer.is_active and peer.history.first().history_user == north_admin


def test_a_clinic_admin_cannot_add_a_sender_to_another_clinic_or_reuse_a_title(client, north, south, north_admin):
    root = UserFactory(clinic=None, is_superuser=True, role=None)
    dicom_peer_create(clinic=south, ae_title="TAKEN", created_by=root)
    client.force_login(north_admin)
    response = client.post(reverse("admin:dicom_dicompeer_add"), _form(south))
    assert response.status_code == 200 and b"Select a valid choice" in response.content
    response = client.post(reverse("admin:dicom_dicompeer_add"), _form(north, ae_title="TAKEN"))
    assert response.status_code == 200 and b"Another sender is registered with this AE title" in response.content
    response = client.post(reverse("admin:dicom_dicompeer_add"), _form(north, ae_title="BAD\\TITLE"))
    assert response.status_code == 200 and b"backslash" in response.content
    assert DicomPeer.objects.count() == 1
