"""Tokens: obtain, rotate, revoke; failures and uses logged; per-user throttling."""

from __future__ import annotations

import logging

import pytest
from django.core.cache import caches
from rest_framework.test import APIClient

from tests.conftest import _token_client


@pytest.fixture
def throttle_cache(settings):
    cache = caches[settings.API_THROTTLE_CACHE]
    cache.clear()
    yield cache
    cache.clear()


class TestTokenObtainApi:
    def test_password_gives_the_token_even_with_a_stale_token_header(self, integrator, throttle_cache):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION="Token stale-and-unknown")

        response = client.post(
            "/api/v1/auth/token/", {"username": "api_north", "password": "correct-horse-battery"}, format="json"
        )

        assert response.status_code == 200
        assert len(response.json()["token"]) == 40

    def test_wrong_password_is_a_logged_401(self, integrator, throttle_cache, caplog):
        with caplog.at_level(logging.WARNING, logger="fetalsite.api"):
            response = APIClient().post(
                "/api/v1/auth/token/", {"username": "api_north", "password": "nope"}, format="json"
            )

        assert response.status_code == 401
        assert response.json()["code"] == "authentication_failed"
        assert "API login failed for username 'api_north'" in caplog.text
        assert "nope" not in caplog.text

    def test_logs_token_use_without_the_key(self, integrator, caplog):
        client = _token_client(integrator)
        key = client._credentials["HTTP_AUTHORIZATION"].split()[1]

        with caplog.at_level(logging.INFO, logger="fetalsite.api"):
            client.get("/api/v1/patients/")

        assert "API token used by api_north" in caplog.text
        assert key not in caplog.text


class TestTokenRotateAndRevokeApi:
    def test_rotation_replaces_the_token(self, api_client):
        response = api_client.post("/api/v1/auth/token/rotate/")
        new_client = APIClient()
        new_client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")

        assert response.status_code == 200
        assert api_client.get("/api/v1/patients/").status_code == 401
        assert new_client.get("/api/v1/patients/").status_code == 200

    def test_revocation_ends_the_token(self, api_client):
        revoked = api_client.delete("/api/v1/auth/token/")
        after = api_client.get("/api/v1/patients/")

        assert revoked.status_code == 204
        assert after.status_code == 401
        assert after.json()["code"] == "authentication_failed"
        assert after["WWW-Authenticate"] == "Token"

    def test_a_listed_people_role_rotates_and_revokes_its_own_token(self, sonographer):
        # The test settings list sonographers in API_TOKEN_ROLES; tests/api/test_token_rules.py covers the default.
        client = _token_client(sonographer)
        rotated = client.post("/api/v1/auth/token/rotate/")
        client.credentials(HTTP_AUTHORIZATION=f"Token {rotated.json()['token']}")

        assert rotated.status_code == 200
        assert client.delete("/api/v1/auth/token/").status_code == 204
        assert client.get("/api/v1/patients/").status_code == 401

    def test_anonymous_is_a_401(self, db):
        response = APIClient().post("/api/v1/auth/token/rotate/")

        assert response.status_code == 401
        assert set(response.json()) == {"detail", "code"}


class TestThrottling:
    def test_too_many_requests_is_a_429_with_retry_after(self, api_client, settings, throttle_cache):
        settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "user": "3/minute"}

        statuses = [api_client.get("/api/v1/patients/").status_code for _ in range(4)]
        throttled = api_client.get("/api/v1/patients/")

        assert statuses == [200, 200, 200, 429]
        assert throttled.json()["code"] == "throttled"
        assert 0 < int(throttled["Retry-After"]) <= 60

    def test_password_attempts_are_throttled_per_address(self, integrator, settings, throttle_cache):
        settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "login": "2/minute"}
        client = APIClient()
        attempt = {"username": "api_north", "password": "wrong"}

        statuses = [client.post("/api/v1/auth/token/", attempt, format="json").status_code for _ in range(3)]

        assert statuses == [401, 401, 429]
