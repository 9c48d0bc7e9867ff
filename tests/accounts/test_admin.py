"""A clinic admin (staff with a clinic) sees and edits only that clinic in the Django admin."""

import pytest
from django.contrib.auth.models import Permission

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
