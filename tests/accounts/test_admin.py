"""A clinic admin (staff with a clinic) sees and edits only that clinic in the Django admin."""

import pytest
from django.contrib.auth.models import Group, Permission

from fetalsite.accounts.roles import ROLE_PERMISSIONS, Role
from tests.factories import StudyFactory, UserFactory


@pytest.fixture
def north_admin(north):
    admin = UserFactory(username="admin_north", clinic=north, is_staff=True, role=None)
    admin.user_permissions.set(Permission.objects.filter(content_type__app_label__in=["accounts", "patients"]))
    return admin


@pytest.fixture
def two_clinics(study, south_sonographer):
    return study, StudyFactory(patient__clinic=south_sonographer.clinic, patient__mrn="SOUTH-1")


class TestClinicAdmin:
    def test_lists_show_only_the_admins_clinic(self, client, north_admin, two_clinics, sonographer):
        client.force_login(north_admin)
        users = client.get("/admin/accounts/user/").content.decode()
        assert "sono_north" in users and "sono_south" not in users
        patients = client.get("/admin/patients/patient/").content.decode()
        assert two_clinics[0].patient.mrn in patients and "SOUTH-1" not in patients
        # The filter lists name only the admin's own clinic, not every clinic on the server.
        assert "South Clinic" not in users and "South Clinic" not in patients

    def test_another_clinics_records_cannot_be_opened(self, client, north_admin, two_clinics, south_sonographer):
        client.force_login(north_admin)
        for url in (
            f"/admin/accounts/user/{south_sonographer.id}/change/",
            f"/admin/patients/patient/{two_clinics[1].patient_id}/change/",
            f"/admin/patients/study/{two_clinics[1].id}/change/",
        ):
            response = client.get(url)
            assert response.status_code == 302 and response.url == "/admin/", url

    def test_a_clinic_admin_cannot_grant_superuser_or_move_users_to_another_clinic(
        self, client, north_admin, sonographer, south
    ):
        client.force_login(north_admin)
        page = client.get(f"/admin/accounts/user/{sonographer.id}/change/").content.decode()
        assert 'name="is_superuser"' not in page
        assert "South Clinic" not in page

    def test_superusers_see_every_clinic(self, client, two_clinics, sonographer, south_sonographer):
        root = UserFactory(username="root", clinic=None, is_superuser=True, is_staff=True, role=None)
        client.force_login(root)
        users = client.get("/admin/accounts/user/").content.decode()
        assert "sono_north" in users and "sono_south" in users


class TestClinicAdminRole:
    """The clinic_admin group gives a staff user of a clinic the admin over that clinic, without hand-picked
    permissions: its users, a read-only view of its records, and its access log."""

    @pytest.fixture
    def role_admin(self, north):
        return UserFactory(username="admin_north", clinic=north, is_staff=True, role=Role.CLINIC_ADMIN)

    def test_the_group_holds_exactly_the_roles_permissions(self, db):
        group = Group.objects.get(name=Role.CLINIC_ADMIN)
        held = set(group.permissions.values_list("content_type__app_label", "codename"))
        assert held == set(ROLE_PERMISSIONS[Role.CLINIC_ADMIN])
        assert ("audit", "view_accesslogentry") in held and ("auth", "change_permission") not in held

    def test_manages_the_clinics_users_and_reads_its_records_and_access_log(
        self, client, role_admin, two_clinics, sonographer
    ):
        client.force_login(role_admin)
        users = client.get("/admin/accounts/user/").content.decode()
        assert "sono_north" in users and "sono_south" not in users
        assert client.get(f"/admin/accounts/user/{sonographer.id}/change/").status_code == 200
        patients = client.get("/admin/patients/patient/").content.decode()
        assert two_clinics[0].patient.mrn in patients and "SOUTH-1" not in patients
        assert client.get("/admin/audit/accesslogentry/").status_code == 200

    def test_cannot_add_or_change_clinical_records_in_the_admin(self, client, role_admin, two_clinics):
        client.force_login(role_admin)
        assert client.get("/admin/patients/patient/add/").status_code == 403
        patient = two_clinics[0].patient
        response = client.post(f"/admin/patients/patient/{patient.id}/change/", {"mrn": "CHANGED"})
        assert response.status_code == 403
        patient.refresh_from_db()
        assert patient.mrn != "CHANGED"
