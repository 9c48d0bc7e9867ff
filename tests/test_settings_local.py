"""`make run` serves with the local settings: DEBUG must be off unless a developer asks for it,
so that an error never shows Django's debug page (every setting and the environment)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings

# Runs in a fresh interpreter with the local settings and an empty SQLite database, so that
# logging in fails inside the database layer: a genuine unhandled error, answered as a page.
_FORCED_ERROR = """
import json, django
django.setup()
from django.conf import settings
from django.test import Client
response = Client(raise_request_exception=False).post(
    "/login/", {"username": "anyone", "password": "anything"}, HTTP_HOST="127.0.0.1:8000"
)
print(json.dumps({
    "DEBUG": settings.DEBUG,
    "SESSION_COOKIE_SECURE": settings.SESSION_COOKIE_SECURE,
    "CSRF_COOKIE_SECURE": settings.CSRF_COOKIE_SECURE,
    "WHITENOISE_USE_FINDERS": getattr(settings, "WHITENOISE_USE_FINDERS", False),
    "status": response.status_code,
    "body": response.content.decode(errors="replace"),
}))
"""


def _run_with_local_settings(tmp_path, **extra_env: str) -> dict:
    """The local settings imported as `make run` imports them, from a clean environment."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "DJANGO_SETTINGS_MODULE": "fetalsite.settings.local",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}",
        **extra_env,
    }
    result = subprocess.run(
        [sys.executable, "-c", _FORCED_ERROR],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=settings.BASE_DIR,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def default_outcome(tmp_path_factory) -> dict:
    return _run_with_local_settings(tmp_path_factory.mktemp("local-settings"))


class TestLocalSettings:
    def test_debug_is_off_by_default_and_a_500_reveals_no_settings(self, default_outcome):
        outcome = default_outcome

        assert outcome["DEBUG"] is False
        assert outcome["status"] == 500
        assert "Server Error (500)" in outcome["body"]
        for secret_or_detail in ("SECRET_KEY", "DATABASE_URL", "Traceback", "OperationalError", "sqlite"):
            assert secret_or_detail not in outcome["body"]

    def test_plain_http_demo_keeps_cookies_usable_and_serves_static_files(self, default_outcome):
        outcome = default_outcome

        # Secure cookies would never come back over http://127.0.0.1: no login, no CSRF token.
        assert outcome["SESSION_COOKIE_SECURE"] is False and outcome["CSRF_COOKIE_SECURE"] is False
        assert outcome["WHITENOISE_USE_FINDERS"] is True

    def test_developers_opt_in_to_debug_explicitly(self, tmp_path):
        """The same error with DEBUG=true shows the debug page: the check above would see a leak."""
        outcome = _run_with_local_settings(tmp_path, DEBUG="true")

        assert outcome["DEBUG"] is True
        assert outcome["status"] == 500 and "SECRET_KEY" in outcome["body"]
