"""A STOW-RS body sent chunked (Transfer-Encoding: chunked, no Content-Length), as Orthanc's DICOMweb plugin sends
by default, by a real chunked request (http.client with a generator body): gunicorn, the production server (the
Procfile's web process), decodes the chunks and the instance is stored; Django's own server (runserver, the tests'
live server) hands the app no body, so it answers 411 naming the fix rather than a puzzling 400."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.db import connection

from patients.models import DicomInstance
from tests.conftest import wait_for
from tests.dicom.dicomweb_clients import dataset, token_of
from tests.dicom_samples import dicom_bytes

pytestmark = pytest.mark.django_db(transaction=True)
BOUNDARY = "chunked-b0undary"


def stow_chunked(address: str, user, data: bytes) -> tuple[int, dict]:
    """POST /dicomweb/studies with the body in 4 KiB chunks and no Content-Length; (status, JSON body)."""
    body = b"--" + BOUNDARY.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + data
    body += b"\r\n--" + BOUNDARY.encode() + b"--\r\n"

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    host, port = urlsplit(address).hostname, urlsplit(address).port
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request(
            "POST",
            "/dicomweb/studies",
            body=pieces(),
            headers={
                "Authorization": f"Token {token_of(user)}",
                "Content-Type": f'multipart/related; type="application/dicom"; boundary={BOUNDARY}',
            },
        )
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def test_a_chunked_body_is_refused_with_411_where_the_server_does_not_decode_it(live_server, integrator):
    data = dicom_bytes()

    status, body = stow_chunked(live_server.url, integrator, data)

    assert status == 411
    assert body["code"] == "length_required" and '"ChunkedTransfers": false' in body["detail"]
    assert not DicomInstance.objects.exists()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def gunicorn_server(transactional_db) -> Iterator[str]:
    """The app under gunicorn, as the Procfile runs it, on this test's database and media folder; its URL once it
    answers. Stopped (and awaited) after the test."""
    db = connection.settings_dict
    database_url = f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    if connection.vendor != "postgresql":
        pytest.skip("the gunicorn test shares the test database with a second process: PostgreSQL only")
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "fetalsite.settings.test",
        "DATABASE_URL": database_url,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "FETAL_TEST_RUN_ID": settings.TEST_RUN_ID,
    }
    command = [sys.executable, "-m", "gunicorn", "fetalsite.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:

        def answers() -> bool:
            assert process.poll() is None, process.stdout.read().decode(errors="replace")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return True
            except OSError:
                return False

        wait_for(answers, timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_gunicorn_decodes_a_chunked_body_and_the_instance_is_stored(gunicorn_server, integrator):
    data = dicom_bytes(patient_id="MRN-CHUNKED")

    status, body = stow_chunked(gunicorn_server, integrator, data)

    assert status == 200, body
    stored = DicomInstance.objects.get(sop_instance_uid=dataset(data).SOPInstanceUID)
    assert stored.clinic_id == integrator.clinic_id
    assert stored.image.original.read() == data
