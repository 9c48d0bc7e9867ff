"""The security probe's admin findings, one test each: what a clinic admin did, and that it no longer works."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied

from classifier.labels import PLANE_LABELS
from classifier.models import ModelVersion
from classifier.services import model_version_activate
from fetalsite.accounts.models import User
from fetalsite.accounts.roles import Role
from fetalsite.accounts.services import user_save_by_admin
from tests.factories import PatientFactory, UserFactory

NEW_PASSWORD = "taken-Over-2026!"


@pytest.fixture
def clinic_admin(north):
    return UserFactory(username="admin_north", clinic=north, is_staff=True, role=Role.CLINIC_ADMIN)


@pytest.fixture
def root(db):
    return UserFactory(username="root", clinic=None, is_superuser=True, is_staff=True, role=None)


def _versions():
    common = {"sha256": "0" * 64, "class_labels": PLANE_LABELS, "input_size": 32, "review_threshold": 0.5}
    old = ModelVersion.objects.create(name="m", version="1", file_path="m1.keras", **common)
    new = ModelVersion.objects.create(name="m", version="2", file_path="m2.keras", is_active=True, **common)
    return old, new


class TestHistoryRevertEscalation:
    def test_the_superusers_history_cannot_be_read_or_reverted_into_the_clinic(self, client, clinic_admin, root):
        root.first_name = "Root"
        root.save()  # a second history row to "revert" to
        version = root.history.order_by("history_id").first()
        client.force_login(clinic_admin)
        assert client.get(f"/admin/accounts/user/{root.id}/history/").status_code == 404
        url = f"/admin/accounts/user/{root.id}/history/{version.history_id}/"
        assert client.post(url, {"username": "root", "clinic": clinic_admin.clinic_id}).status_code == 404
        assert client.post(f"/admin/accounts/user/{root.id}/password/", {"password1": NEW_PASSWORD}).status_code == 404
        root.refresh_from_db()
        assert root.clinic_id is None and not root.check_password(NEW_PASSWORD)

    def test_a_superuser_placed_in_the_clinic_stays_out_of_its_admins_reach(self, client, clinic_admin, north):
        boss = UserFactory(username="boss", clinic=north, is_superuser=True, is_staff=True, role=None)
        client.force_login(clinic_admin)
        assert "boss" not in client.get("/admin/accounts/user/").content.decode()
        response = client.post(
            f"/admin/accounts/user/{boss.id}/password/", {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
        )
        assert response.status_code == 404
        boss.refresh_from_db()
        assert not boss.check_password(NEW_PASSWORD)

    def test_another_clinics_patient_cannot_be_renamed_through_its_history(self, client, clinic_admin, south):
        patient = PatientFactory(clinic=south, family_name="Souza")
        version = patient.history.get()
        client.force_login(clinic_admin)
        assert client.get(f"/admin/patients/patient/{patient.id}/history/").status_code == 404
        url = f"/admin/patients/patient/{patient.id}/history/{version.history_id}/"
        client.post(url, {"mrn": patient.mrn, "given_name": "X", "family_name": "Renamed"})
        patient.refresh_from_db()
        assert patient.family_name == "Souza"

    def test_own_clinics_history_is_readable_but_posting_to_a_version_is_refused(self, client, clinic_admin, north):
        patient = PatientFactory(clinic=north, family_name="Nunes")
        version = patient.history.get()
        client.force_login(clinic_admin)
        assert client.get(f"/admin/patients/patient/{patient.id}/history/").status_code == 200
        url = f"/admin/patients/patient/{patient.id}/history/{version.history_id}/"
        assert client.get(url).status_code == 200
        assert client.post(url, {"mrn": patient.mrn, "family_name": "Renamed"}).status_code == 403
        patient.refresh_from_db()
        assert patient.family_name == "Nunes"


class TestAccountsThroughTheService:
    def test_a_forged_superuser_flag_and_clinic_are_ignored_on_a_clinic_admins_save(self, clinic_admin, south):
        user = UserFactory(username="nurse", clinic=clinic_admin.clinic)
        user.is_superuser, user.clinic = True, south
        user_save_by_admin(user=user, roles=[Role.CLINICIAN], acting_user=clinic_admin)
        user.refresh_from_db()
        assert not user.is_superuser and user.clinic_id == clinic_admin.clinic_id and not user.is_staff
        assert list(user.groups.values_list("name", flat=True)) == [Role.CLINICIAN]

    def test_granting_the_clinic_admin_role_gives_staff_status(self, clinic_admin):
        user = UserFactory(username="deputy", clinic=clinic_admin.clinic)
        user_save_by_admin(user=user, roles=[Role.CLINIC_ADMIN], acting_user=clinic_admin)
        user.refresh_from_db()
        assert user.is_staff

    def test_another_clinics_account_is_refused(self, clinic_admin, south_sonographer):
        south_sonographer.first_name = "Changed"
        with pytest.raises(PermissionDenied):
            user_save_by_admin(user=south_sonographer, roles=None, acting_user=clinic_admin)
        south_sonographer.refresh_from_db()
        assert south_sonographer.first_name != "Changed"

    def test_a_clinic_admin_cannot_change_their_own_role(self, clinic_admin):
        with pytest.raises(PermissionDenied, match="your own role"):
            user_save_by_admin(user=clinic_admin, roles=[Role.CLINICIAN], acting_user=clinic_admin)
        assert clinic_admin.groups.filter(name=Role.CLINIC_ADMIN).exists()

    def test_a_sonographer_cannot_manage_accounts(self, sonographer):
        with pytest.raises(PermissionDenied):
            user_save_by_admin(user=User(username="x"), roles=[], acting_user=sonographer)

    def test_the_add_page_creates_the_account_in_the_admins_clinic(self, client, clinic_admin):
        client.force_login(clinic_admin)
        clinician_group = Group.objects.get(name=Role.CLINICIAN)
        response = client.post(
            "/admin/accounts/user/add/",
            {
                "username": "new_clin",
                "usable_password": "true",
                "password1": NEW_PASSWORD,
                "password2": NEW_PASSWORD,
                "groups": [clinician_group.id],
                "is_superuser": "on",
            },
        )
        assert response.status_code == 302, response.content.decode()[:2000]
        created = User.objects.get(username="new_clin")
        assert created.clinic_id == clinic_admin.clinic_id and not created.is_superuser and not created.is_staff
        assert created.history.latest().history_user_id == clinic_admin.id


class TestModelActivation:
    def test_a_clinic_admin_is_not_offered_and_cannot_post_the_action(self, client, clinic_admin):
        old, new = _versions()
        client.force_login(clinic_admin)
        assert b'value="activate"' not in client.get("/admin/classifier/modelversion/").content
        client.post("/admin/classifier/modelversion/", {"action": "activate", "_selected_action": [old.id]})
        new.refresh_from_db()
        assert new.is_active

    def test_the_service_refuses_anyone_but_a_superuser(self, clinic_admin):
        old, new = _versions()
        with pytest.raises(PermissionDenied, match="every clinic"):
            model_version_activate(model_version=old, activated_by=clinic_admin)
        new.refresh_from_db()
        assert new.is_active

    def test_a_superuser_activates_and_is_told_it_applies_to_every_clinic(self, client, root):
        old, _ = _versions()
        client.force_login(root)
        response = client.post(
            "/admin/classifier/modelversion/", {"action": "activate", "_selected_action": [old.id]}, follow=True
        )
        assert "for every clinic" in response.content.decode()
        old.refresh_from_db()
        assert old.is_active and old.history.latest().history_user_id == root.id
