"""`manage.py dicom_receiver` as its own process, as the Procfile runs it: it serves and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from tests.dicom.conftest import echo_status

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


def _test_database_url() -> str:
    """The test database, for a process of its own (it must see the sender this test registered)."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def test_the_receiver_process_answers_and_stops_on_sigterm(transactional_db, north_peer):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "fetalsite.settings.test", "DATABASE_URL": _test_database_url()}
    command = [sys.executable, "manage.py", "dicom_receiver", "--host", "127.0.0.1", "--port", "0"]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        started = process.stdout.readline()  # printed once listening; EOF (and a failure below) if it died
        assert "DICOM receiver FETALSITE listening on 127.0.0.1:" in started, process.stderr.read()
        port = int(started.rsplit(":", 1)[1])
        assert echo_status(port) == 0x0000
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert "DICOM receiver stopped" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
