"""Registering and changing known DICOM senders, and the selector that decides who may associate."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from dicom.models import DicomPeer
from dicom.selectors import PeerNotAllowed, dicom_peer_for_association, dicom_peer_list
from dicom.services import dicom_peer_create, dicom_peer_update
from fetalsite.accounts.roles import Role
from tests.factories import UserFactory


@pytest.fixture
def north_admin(north):
    return UserFactory(username="admin_north", clinic=north, is_staff=True, role=Role.CLINIC_ADMIN)


class TestDicomPeerCreate:
    def test_a_clinic_admin_registers_a_sender_with_its_own_service_account(self, north, north_admin):
        peer = dicom_peer_create(
            clinic=north, ae_title="  US_ROOM_3 ", allowed_addresses="10.0.0.5 ,", created_by=north_admin
        )
        assert (peer.ae_title, peer.allowed_addresses) == ("US_ROOM_3", "10.0.0.5")
        account = peer.acting_user
        assert account.clinic == north and not account.has_usable_password() and account.is_active
        assert list(account.groups.values_list("name", flat=True)) == [Role.INTEGRATOR]
        assert account.has_perm("patients.add_ultrasoundimage")
        assert peer.history.get().history_user == north_admin

    @pytest.mark.parametrize(
        "title",
        ["", "    ", "A" * 17, "BACK\\SLASH", "TAB\tHERE", "ÜBER"],
        ids=["empty", "spaces", "17", "bs", "ctl", "utf"],
    )
    def test_a_title_dicom_does_not_allow_is_refused_and_leaves_no_account(self, north, north_admin, title):
        with pytest.raises(ValidationError) as error:
            dicom_peer_create(clinic=north, ae_title=title, created_by=north_admin)
        assert "ae_title" in error.value.error_dict
        assert not DicomPeer.objects.exists()
        assert not north.users.filter(username__startswith="dicom").exists()

    def test_an_ae_title_is_unique_across_clinics(self, north, south, north_admin):
        south_admin = UserFactory(clinic=south, is_staff=True, role=Role.CLINIC_ADMIN)
        dicom_peer_create(clinic=north, ae_title="SHARED", created_by=north_admin)
        with pytest.raises(ValidationError, match="Another sender is registered with this AE title"):
            dicom_peer_create(clinic=south, ae_title=" SHARED", created_by=south_admin)

    def test_a_bad_address_list_is_refused(self, north, north_admin):
        with pytest.raises(ValidationError) as error:
            dicom_peer_create(
                clinic=north, ae_title="US1", allowed_addresses="10.0.0.0/8, not-an-ip", created_by=north_admin
            )
        assert "allowed_addresses" in error.value.error_dict

    def test_only_the_clinics_admin_may_register_its_senders(self, north, south, sonographer, north_admin):
        with pytest.raises(PermissionDenied):
            dicom_peer_create(clinic=north, ae_title="US1", created_by=sonographer)
        with pytest.raises(PermissionDenied):
            dicom_peer_create(clinic=south, ae_title="US1", created_by=north_admin)
        assert not DicomPeer.objects.exists()


class TestDicomPeerUpdate:
    def test_changes_are_checked_and_recorded(self, north, south, north_admin):
        peer = dicom_peer_create(clinic=north, ae_title="US1", created_by=north_admin)
        dicom_peer_update(peer=peer, updated_by=north_admin, is_active=False, description="Room 3")
        peer.refresh_from_db()
        assert (peer.is_active, peer.description) == (False, "Room 3")
        assert peer.history.count() == 2
        other_admin = UserFactory(clinic=south, is_staff=True, role=Role.CLINIC_ADMIN)
        with pytest.raises(PermissionDenied):
            dicom_peer_update(peer=peer, updated_by=other_admin, is_active=True)
        with pytest.raises(TypeError):
            dicom_peer_update(peer=peer, updated_by=north_admin, clinic=south)


class TestDicomPeerForAssociation:
    @pytest.fixture
    def peer(self, north, north_admin):
        return dicom_peer_create(
            clinic=north,
            ae_title="US1",
            allowed_addresses="192.0.2.7, 198.51.100.0/24, 2001:db8::/32",
            created_by=north_admin,
        )

    @pytest.mark.parametrize("address", ["192.0.2.7", "198.51.100.200", "::ffff:198.51.100.9", "2001:db8::1"])
    def test_finds_the_sender_from_an_allowed_address(self, peer, address):
        assert dicom_peer_for_association(ae_title="US1 ", address=address) == peer

    @pytest.mark.parametrize(
        ("title", "address", "reason"),
        [
            ("US2", "192.0.2.7", "unknown calling AE title"),
            ("us1", "192.0.2.7", "unknown calling AE title"),  # AE titles are case-sensitive
            ("US1", "192.0.2.8", "not allowed from 192.0.2.8"),
            ("US1", "bogus", "not allowed from bogus"),
        ],
    )
    def test_refuses_unknown_titles_and_other_addresses(self, peer, title, address, reason):
        with pytest.raises(PeerNotAllowed, match=reason):
            dicom_peer_for_association(ae_title=title, address=address)

    def test_an_empty_address_list_allows_any_address_and_inactive_refuses_all(self, peer, north_admin):
        dicom_peer_update(peer=peer, updated_by=north_admin, allowed_addresses="")
        assert dicom_peer_for_association(ae_title="US1", address="203.0.113.1") == peer
        dicom_peer_update(peer=peer, updated_by=north_admin, is_active=False)
        with pytest.raises(PeerNotAllowed, match="not active"):
            dicom_peer_for_association(ae_title="US1", address="203.0.113.1")

    def test_the_list_is_scoped_to_the_users_clinic(self, peer, south):
        assert list(dicom_peer_list(user=UserFactory(clinic=south, role=Role.CLINIC_ADMIN))) == []


def test_seed_demo_dicom_registers_the_demo_sender_once(db):
    import io

    from django.core.management import call_command

    call_command("seed_demo", password="demo-password-1", stdout=io.StringIO())
    for _ in range(2):
        out = io.StringIO()
        call_command("seed_demo_dicom", stdout=out)
    peer = DicomPeer.objects.get()
    assert (peer.ae_title, peer.clinic.name, peer.allowed_addresses) == ("STORESCU", "North Clinic", "127.0.0.1, ::1")
    assert "AE title FETALSITE on 127.0.0.1:11112" in out.getvalue()


def test_the_senders_account_is_a_service_account_that_follows_the_sender(north):
    root = UserFactory(clinic=None, is_superuser=True, role=None)
    peer = dicom_peer_create(clinic=north, ae_title="ROOM_9", created_by=root)
    account = peer.acting_user
    assert account.is_service_account and account.is_active and not account.has_usable_password()
    dicom_peer_update(peer=peer, updated_by=root, is_active=False)
    account.refresh_from_db()
    assert not account.is_active and account.history.first().history_user == root
    dicom_peer_update(peer=peer, updated_by=root, description="back in room 9", is_active=True)
    account.refresh_from_db()
    assert account.is_active
    switched_off = dicom_peer_create(clinic=north, ae_title="SPARE", created_by=root, is_active=False)
    assert not switched_off.acting_user.is_active
