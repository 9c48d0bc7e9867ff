"""Sessions, lock-out, headers and role rights, each checked against the real stack."""

import os
import subprocess
import sys
import time

import pytest
from django.conf import settings

from fetalsite.accounts.middleware import BACKGROUND_HEADER, SESSION_KEY


def login(client, user):
    client.force_login(user)
    client.get("/")  # the first request records activity


class TestIdleLogoff:
    def test_a_session_idle_past_the_limit_is_logged_off(self, client, sonographer):
        login(client, sonographer)
        session = client.session
        session[SESSION_KEY] = time.time() - settings.SESSION_IDLE_TIMEOUT_S - 5
        session.save()
        response = client.get("/")
        assert response.status_code == 302 and response.url.startswith("/login/")
        assert client.get("/").status_code == 302  # really logged out, not just redirected once

    def test_background_polling_does_not_keep_the_session_alive(self, client, sonographer, study):
        login(client, sonographer)
        session = client.session
        stale = time.time() - settings.SESSION_IDLE_TIMEOUT_S + 2
        session[SESSION_KEY] = stale
        session.save()
        poll = client.get(f"/studies/{study.id}/images/", headers={BACKGROUND_HEADER: "1"})
        assert poll.status_code == 200
        assert client.session[SESSION_KEY] == stale

    def test_a_json_request_after_idle_gets_401_not_a_login_page(self, client, sonographer, study):
        login(client, sonographer)
        session = client.session
        session[SESSION_KEY] = time.time() - settings.SESSION_IDLE_TIMEOUT_S - 5
        session.save()
        response = client.get(f"/studies/{study.id}/images/", headers={"Accept": "application/json"})
        assert response.status_code == 401 and response.json()["code"] == "session_expired"


class TestLoginLockout:
    def test_repeated_failures_lock_the_account_even_for_the_right_password(self, client, sonographer):
        for _ in range(settings.AXES_FAILURE_LIMIT):
            response = client.post("/login/", {"username": "sono_north", "password": "wrong-password"})
            assert response.status_code in (200, 429)
        locked = client.post("/login/", {"username": "sono_north", "password": "correct-horse-battery"})
        assert locked.status_code == 429
        assert "_auth_user_id" not in client.session

    def test_a_good_login_works(self, client, sonographer):
        response = client.post("/login/", {"username": "sono_north", "password": "correct-horse-battery"})
        assert response.status_code == 302 and client.session["_auth_user_id"] == str(sonographer.id)


class TestSecurityHeaders:
    def test_pages_carry_csp_frame_deny_nosniff_and_referrer_policy(self, client):
        response = client.get("/login/")
        assert "default-src 'self'" in response["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
        assert response["X-Frame-Options"] == "DENY"
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Referrer-Policy"] == "same-origin"

    def test_forms_need_a_csrf_token(self, sonographer, study):
        from django.test import Client

        strict = Client(enforce_csrf_checks=True)
        strict.force_login(sonographer)
        response = strict.post(f"/patients/{study.patient_id}/studies/new/", {"exam_date": "2026-01-01"})
        assert response.status_code == 403

    def test_production_settings_pass_the_deploy_check(self):
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "fetalsite.settings.production",
            "SECRET_KEY": "k" * 20 + "-production-like-secret-with-enough-entropy-1234567890",
            "ALLOWED_HOSTS": "fetal.example.org",
        }
        result = subprocess.run(
            [sys.executable, "manage.py", "check", "--deploy", "--tag", "security", "--fail-level", "WARNING"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=settings.BASE_DIR,
        )
        assert result.returncode == 0, result.stdout + result.stderr


class TestRoleRights:
    def test_integrators_cannot_use_the_web_pages(self, client, integrator, study):
        client.force_login(integrator)
        assert client.get("/").status_code == 403
        assert client.get(f"/studies/{study.id}/").status_code == 403

    @pytest.mark.parametrize("username", ["sono_north", "clin_north"])
    def test_only_staff_reach_the_admin(self, client, sonographer, clinician, username):
        client.force_login(sonographer if username == "sono_north" else clinician)
        response = client.get("/admin/")
        assert response.status_code == 302 and "/admin/login/" in response.url
