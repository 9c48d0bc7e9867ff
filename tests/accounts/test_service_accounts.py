"""Service accounts (a DICOM sender's): out of a clinic admin's reach, read-only to a superuser, and never a way in
(no password login, no API token), even when a password was somehow set on one."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from fetalsite.accounts.models import User
from fetalsite.accounts.roles import Role
from fetalsite.accounts.services import ServiceAccountNotEditable, service_account_create, user_save_by_admin
from fetalsite.accounts.tokens import user_may_hold_token
from tests.dbstate import database_snapshot
from tests.factories import UserFactory

PASSWORD = "correct-horse-battery-staple-9"


@pytest.fixture
def north_admin(north):
    return UserFactory(username="admin_north", clinic=north, is_staff=True, role=Role.CLINIC_ADMIN)


@pytest.fixture
def root(db):
    return UserFactory(username="root", clinic=None, is_superuser=True, is_staff=True, role=None)


@pytest.fixture
def machine(north, root) -> User:
    return service_account_create(
        username_base="dicom-US_ROOM_3", clinic=north, role=Role.INTEGRATOR, label="DICOM sender", created_by=root
    )


def test_a_clinic_admin_neither_sees_nor_edits_a_service_account(client, north_admin, machine, sonographer):
    client.force_login(north_admin)
    listing = client.get("/admin/accounts/user/").content.decode()
    assert "sono_north" in listing and machine.username not in listing
    before = database_snapshot()
    change = f"/admin/accounts/user/{machine.id}/change/"
    assert client.get(change).status_code == 302
    posted = client.post(change, {"username": machine.username, "is_active": "on", "groups": []})
    assert posted.status_code == 302 and posted.url == "/admin/"
    password = client.post(
        f"/admin/accounts/user/{machine.id}/password/",
        {"password1": PASSWORD, "password2": PASSWORD, "usable_password": "true"},
    )
    assert password.status_code in (302, 403, 404)
    assert database_snapshot() == before
    machine.refresh_from_db()
    assert not machine.has_usable_password()


def test_a_superuser_sees_it_marked_and_read_only(client, root, machine):
    client.force_login(root)
    assert machine.username in client.get("/admin/accounts/user/").content.decode()
    page = client.get(f"/admin/accounts/user/{machine.id}/change/")
    assert page.status_code == 200 and 'name="username"' not in page.content.decode()
    before = database_snapshot()
    response = client.post(
        f"/admin/accounts/user/{machine.id}/password/", {"password1": PASSWORD, "password2": PASSWORD}
    )
    assert response.status_code == 403
    assert database_snapshot() == before


def test_the_service_refuses_any_change_whoever_asks(machine, north_admin, root):
    for acting_user in (north_admin, root):
        machine.set_password(PASSWORD)
        with pytest.raises(ServiceAccountNotEditable):
            user_save_by_admin(user=machine, roles=None, acting_user=acting_user)
    machine.refresh_from_db()
    assert not machine.has_usable_password()


def test_no_login_and_no_token_even_with_a_password(client, machine):
    # A password set behind the services' back (the shell) still opens nothing.
    machine.set_password(PASSWORD)
    machine.save()
    client.post("/login/", {"username": machine.username, "password": PASSWORD})
    assert "_auth_user_id" not in client.session
    response = APIClient().post("/api/v1/auth/token/", {"username": machine.username, "password": PASSWORD})
    assert response.status_code in (400, 401, 403) and not Token.objects.filter(user=machine).exists()
    assert not user_may_hold_token(machine)


def test_a_token_made_for_it_is_refused(machine):
    token = Token.objects.create(user=machine)
    response = APIClient(HTTP_AUTHORIZATION=f"Token {token.key}").get("/api/v1/studies/")
    assert response.status_code == 401 and not Token.objects.filter(user=machine).exists()
