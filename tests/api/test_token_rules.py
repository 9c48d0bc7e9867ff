"""API tokens are held to the session controls: expiry, password change, deactivation, axes lock-out, and the
roles that may hold one. Every refusal is a logged 401 (403 at issue) that names its reason, never the key."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from fetalsite.settings import base as base_settings
from tests.conftest import _token_client
from tests.factories import UserFactory

PATIENTS = "/api/v1/patients/"
PASSWORD = "correct-horse-battery"


def token_key(client: APIClient) -> str:
    return client._credentials["HTTP_AUTHORIZATION"].split()[1]


def log_in(username: str, password: str = PASSWORD, **extra):
    return APIClient().post("/api/v1/auth/token/", {"username": username, "password": password}, format="json", **extra)


def assert_refused(response, code: str) -> None:
    assert response.status_code == 401
    assert response.json()["code"] == code
    assert response["WWW-Authenticate"] == "Token"


class TestTokenExpiry:
    def test_an_expired_token_is_a_logged_401_and_is_deleted(self, api_client, integrator, caplog):
        key = token_key(api_client)
        Token.objects.filter(key=key).update(created=timezone.now() - timedelta(days=settings.API_TOKEN_TTL_DAYS))

        with caplog.at_level(logging.INFO, logger="fetalsite.api"):
            response = api_client.get(PATIENTS)

        assert_refused(response, "token_expired")
        assert "expired" in response.json()["detail"]
        assert not Token.objects.filter(key=key).exists()
        assert "API token refused for api_north" in caplog.text and "token_expired" in caplog.text
        assert key not in caplog.text

    def test_a_token_inside_its_lifetime_works(self, api_client):
        key = token_key(api_client)
        almost = timezone.now() - timedelta(days=settings.API_TOKEN_TTL_DAYS) + timedelta(minutes=5)
        Token.objects.filter(key=key).update(created=almost)

        assert api_client.get(PATIENTS).status_code == 200

    def test_logging_in_after_expiry_issues_a_fresh_token(self, api_client, integrator):
        old_key = token_key(api_client)
        Token.objects.filter(key=old_key).update(created=timezone.now() - timedelta(days=365))

        response = log_in("api_north")
        fresh = APIClient()
        fresh.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")

        assert response.status_code == 200
        assert response.json()["token"] != old_key
        assert fresh.get(PATIENTS).status_code == 200
        assert api_client.get(PATIENTS).status_code == 401


class TestTokenEndsWithThePassword:
    def test_set_password_and_save_ends_the_token(self, api_client, integrator, caplog):
        integrator.set_password("a-new-long-passphrase")
        with caplog.at_level(logging.INFO, logger="fetalsite.api"):
            integrator.save()

        assert_refused(api_client.get(PATIENTS), "authentication_failed")
        assert not Token.objects.filter(user=integrator).exists()
        assert "API token of api_north" in caplog.text and "revoked: password changed" in caplog.text

    def test_a_password_change_in_the_admin_ends_the_token(self, client, api_client, integrator):
        root = UserFactory(username="root", clinic=None, is_superuser=True, is_staff=True, role=None)
        client.force_login(root)

        response = client.post(
            f"/admin/accounts/user/{integrator.id}/password/",
            {"password1": "Another-long-passphrase-9", "password2": "Another-long-passphrase-9"},
        )

        assert response.status_code == 302
        assert api_client.get(PATIENTS).status_code == 401

    def test_saving_other_fields_keeps_the_token(self, api_client, integrator):
        integrator.first_name = "Pacs"
        integrator.save()
        integrator.last_login = timezone.now()
        integrator.save(update_fields=["last_login"])

        assert api_client.get(PATIENTS).status_code == 200


class TestTokenEndsWithDeactivation:
    def test_deactivating_the_account_deletes_its_token(self, api_client, integrator):
        integrator.is_active = False
        integrator.save()

        assert not Token.objects.filter(user=integrator).exists()
        assert_refused(api_client.get(PATIENTS), "authentication_failed")

    def test_a_token_left_on_an_inactive_account_is_refused_and_deleted(self, api_client, integrator, caplog):
        type(integrator).objects.filter(pk=integrator.pk).update(is_active=False)  # bypasses the save receiver

        with caplog.at_level(logging.WARNING, logger="fetalsite.api"):
            response = api_client.get(PATIENTS)

        assert_refused(response, "user_inactive")
        assert not Token.objects.filter(user=integrator).exists()
        assert "user_inactive" in caplog.text


class TestTokenRefusedWhileLockedOut:
    def fail_logins(self, username: str, **extra) -> None:
        for _ in range(settings.AXES_FAILURE_LIMIT):
            assert log_in(username, "wrong-password", **extra).status_code in (401, 429)

    def test_a_locked_out_account_cannot_use_its_token_until_unlocked(self, api_client, integrator, caplog):
        self.fail_logins("api_north")

        with caplog.at_level(logging.WARNING, logger="fetalsite.api"):
            locked = api_client.get(PATIENTS)

        assert_refused(locked, "account_locked")
        assert "locked" in locked.json()["detail"]
        assert "API token refused for api_north" in caplog.text and "account_locked" in caplog.text
        assert Token.objects.filter(user=integrator).exists()  # the lock-out ends by itself; the token is kept
        AxesProxyHandler.reset_attempts(username="api_north")
        assert api_client.get(PATIENTS).status_code == 200

    def test_failures_from_another_address_do_not_lock_this_client(self, api_client):
        # AXES_LOCKOUT_PARAMETERS locks a username *from an address*, for tokens as for password logins,
        # so a stranger cannot lock an integrator out by guessing its password.
        self.fail_logins("api_north", REMOTE_ADDR="203.0.113.9")

        assert api_client.get(PATIENTS).status_code == 200


class TestOwnerRevokes:
    def test_any_token_owner_revokes_their_token(self, sonographer):
        client = _token_client(sonographer)

        revoked = client.delete("/api/v1/auth/token/")

        assert revoked.status_code == 204
        assert_refused(client.get(PATIENTS), "authentication_failed")


class TestWhoMayHoldAToken:
    @pytest.fixture
    def default_roles(self, settings):
        settings.API_TOKEN_ROLES = base_settings.API_TOKEN_ROLES
        return settings.API_TOKEN_ROLES

    def test_the_default_is_integrators_only(self, default_roles):
        assert default_roles == ["integrator"]

    @pytest.mark.parametrize("username", ["sono_north", "clin_north"])
    def test_people_get_a_logged_403_at_issue_by_default(
        self, default_roles, sonographer, clinician, integrator, username, caplog
    ):
        with caplog.at_level(logging.WARNING, logger="fetalsite.api"):
            refused = log_in(username)

        assert refused.status_code == 403
        assert refused.json()["code"] == "token_not_allowed"
        assert "integrator" in refused.json()["detail"]
        assert not Token.objects.exists()
        assert f"API token refused to {username}" in caplog.text
        assert log_in("api_north").status_code == 200

    def test_a_superuser_outside_the_listed_roles_gets_no_token(self, default_roles, db):
        UserFactory(username="root", clinic=None, is_superuser=True, is_staff=True, role=None)

        assert log_in("root").status_code == 403

    def test_a_token_of_a_role_no_longer_allowed_is_refused_and_deleted(self, default_roles, sonographer, caplog):
        client = _token_client(sonographer)
        key = token_key(client)

        with caplog.at_level(logging.WARNING, logger="fetalsite.api"):
            response = client.get(PATIENTS)

        assert_refused(response, "token_not_allowed")
        assert not Token.objects.filter(user=sonographer).exists()
        assert "token_not_allowed" in caplog.text and key not in caplog.text

    def test_rotation_through_a_session_is_refused_to_other_roles(self, default_roles, client, sonographer):
        client.force_login(sonographer)

        response = client.post("/api/v1/auth/token/rotate/", content_type="application/json")

        assert response.status_code == 403
        assert response.json()["code"] == "token_not_allowed"
        assert not Token.objects.filter(user=sonographer).exists()

    def test_listed_roles_may_hold_a_token(self, settings, sonographer):
        settings.API_TOKEN_ROLES = ["integrator", "sonographer"]

        assert log_in("sono_north").status_code == 200


class TestTokenSettingsCheck:
    def test_an_unknown_role_or_a_ttl_under_a_day_stops_the_app(self, settings):
        settings.API_TOKEN_ROLES = ["integrator", "nurse"]
        settings.API_TOKEN_TTL_DAYS = 0

        with pytest.raises(SystemCheckError) as error:
            call_command("check")

        assert "accounts.E001" in str(error.value) and "nurse" in str(error.value)
        assert "accounts.E002" in str(error.value)
