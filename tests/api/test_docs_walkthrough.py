"""docs/api.md runs: its curl walkthrough and its Python client, taken from the blocks marked
``<!-- test: NAME -->``, against the live server with a real Celery worker and the tiny model.

Each runs twice in one test, as an integrator would run it twice: a fresh MRN each time, nothing left over
that stops the second run. The client's promises are checked through the client itself: a retry with the
same Idempotency-Key creates one study, and a 429 is retried after Retry-After a bounded number of times."""

from __future__ import annotations

import datetime
import os
import re
import shutil
import subprocess
import sys
import time
import types
import uuid
from pathlib import Path

import pytest

from classifier.models import Prediction
from patients.models import Patient, Study, UltrasoundImage
from tests.api.docs_code import docs_block, docs_namespace
from tests.factories import PatientFactory
from tests.images import png_bytes

PASSWORD = "correct-horse-battery"  # tests.factories.UserFactory's password
# The line each run prints last but the review: what it made, and the label the model gave.
SUMMARY = re.compile(r"^patient (\d+) \(MRN (\S+)\), study (\d+), image (\d+): (\w+)", re.MULTILINE)

needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is missing: apt-get install -y curl")


@pytest.fixture(scope="module")
def fetal_client() -> types.SimpleNamespace:
    """docs/api.md's fetal_client.py, imported (its __main__ part does not run)."""
    return types.SimpleNamespace(**docs_namespace("python-client"))


@pytest.fixture
def docs_env(live_server, tmp_path, integrator, clinician) -> dict[str, str]:
    """What a reader sets: the server, the password, the users, an image file."""
    image = tmp_path / "head.png"
    image.write_bytes(png_bytes(width=96, height=80, seed=5))
    return {
        **os.environ,
        "BASE": live_server.url,
        "PASSWORD": PASSWORD,
        "API_USER": integrator.username,
        "CLINICIAN": clinician.username,
        "IMAGE_FILE": str(image),
        "WAIT_S": "60",
    }


def _run(command: list[str], env: dict[str, str], cwd: Path) -> tuple[re.Match, str]:
    """Run a reader's command to the end; its summary line and its last line (the review's answer)."""
    cwd.mkdir()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    summary = SUMMARY.search(result.stdout)
    assert summary, result.stdout
    return summary, result.stdout.rstrip().splitlines()[-1]


def _check_runs(runs: tuple[re.Match, ...], api_client) -> None:
    """Two runs, two patients, each image classified and reviewed; the PUT by MRN again: the same patient."""
    patients = {int(run.group(1)) for run in runs}
    assert len(patients) == len({run.group(2) for run in runs}) == 2
    assert Patient.objects.filter(id__in=patients).count() == Study.objects.filter(patient__in=patients).count() == 2
    images = UltrasoundImage.objects.filter(id__in=[int(run.group(4)) for run in runs])
    assert images.count() == 2
    assert Prediction.objects.filter(job__image__in=images, reviewed_by__isnull=False).count() == 2
    for run in runs:
        again = api_client.put(
            f"/api/v1/patients/by-mrn/{run.group(2)}/",
            {"given_name": "Maria", "family_name": "Rossi", "birth_date": "1991-04-02"},
            format="json",
        )
        assert (again.status_code, again.json()["id"]) == (200, int(run.group(1)))


@pytest.mark.e2e
@needs_curl
def test_the_curl_walkthrough_runs_twice(docs_env, tmp_path, celery_worker, active_model, api_client):
    script = docs_block("walkthrough", language="bash") + "\n" + docs_block("review", language="bash")

    runs, last_lines = zip(
        *[_run(["bash", "-c", script], docs_env, tmp_path / f"curl-{n}") for n in (1, 2)], strict=True
    )

    assert last_lines == ("fetal_brain", "fetal_brain")  # the review's final_label
    _check_runs(runs, api_client)
    # Step 6 saved the original it checked against the image's sha256.
    image_id = runs[1].group(4)
    saved = (tmp_path / "curl-2" / f"image-{image_id}.original").read_bytes()
    assert saved == Path(docs_env["IMAGE_FILE"]).read_bytes()


@pytest.mark.e2e
@needs_curl
@pytest.mark.parametrize(
    ("env", "stderr"),
    [
        ({"PASSWORD": "wrong"}, '"code":"authentication_failed"'),  # the first error stops it, with the answer
        ({"WAIT_S": "1"}, "is not classified after 1 s"),  # no worker here: the wait ends, and says so
    ],
)
def test_the_curl_walkthrough_fails_fast_and_clearly(docs_env, tmp_path, active_model, env, stderr):
    script = docs_block("walkthrough", language="bash")

    result = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env={**docs_env, **env}, capture_output=True, text=True, timeout=30
    )

    assert result.returncode == 1
    assert stderr in result.stderr


@pytest.mark.e2e
def test_the_python_client_runs_twice(docs_env, tmp_path, celery_worker, active_model, api_client):
    client_file = tmp_path / "fetal_client.py"
    client_file.write_text(docs_block("python-client"))

    command = [sys.executable, str(client_file), docs_env["IMAGE_FILE"]]

    runs, last_lines = zip(*[_run(command, docs_env, tmp_path / f"py-{n}") for n in (1, 2)], strict=True)

    assert list(last_lines) == [f"reviewed as {run.group(5)}" for run in runs]  # the clinician agreed
    _check_runs(runs, api_client)


def _seen(api, what=lambda response: response.status_code) -> list:
    """What each response the client receives from now on shows (its status by default), in order."""
    seen: list = []
    api.http.hooks["response"].append(lambda response, **_: seen.append(what(response)))
    return seen


@pytest.mark.e2e
def test_a_retry_with_the_same_key_opens_one_study(fetal_client, live_server, integrator):
    patient = PatientFactory(clinic=integrator.clinic)
    api = fetal_client.FetalClient(live_server.url, integrator.username, PASSWORD)
    key, today = str(uuid.uuid4()), datetime.date.today().isoformat()
    replayed = _seen(api, lambda response: response.headers.get("Idempotent-Replayed"))

    first = api.create_study(patient.id, today, idempotency_key=key)
    retried = api.create_study(patient.id, today, idempotency_key=key)  # as after a timeout: the same key

    assert retried == first
    assert replayed == [None, "true"]
    assert Study.objects.filter(patient=patient).count() == 1
    # A new key is a new request: that is why a retry must keep the first one.
    api.create_study(patient.id, today)
    assert Study.objects.filter(patient=patient).count() == 2


@pytest.mark.e2e
def test_a_taken_mrn_raises_with_the_existing_id(fetal_client, live_server, integrator):
    patient = PatientFactory(clinic=integrator.clinic)
    api = fetal_client.FetalClient(live_server.url, integrator.username, PASSWORD)

    with pytest.raises(fetal_client.ApiError) as caught:
        api.create_patient(mrn=patient.mrn, given_name="Other", family_name="Person")

    error = caught.value
    assert (error.status, error.code, error.existing_id) == (409, "mrn_exists", patient.id)
    assert list(error.fields) == ["mrn"]


@pytest.mark.e2e
class TestRateLimited:
    def test_a_429_is_retried_after_retry_after(self, fetal_client, live_server, integrator, study, settings):
        api = fetal_client.FetalClient(live_server.url, integrator.username, PASSWORD)
        statuses = _seen(api)
        settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "user": "1/second"}

        api.worklist(study.id)
        started = time.monotonic()
        assert api.worklist(study.id) == []

        assert statuses == [200, 429, 200]
        assert 0.9 < time.monotonic() - started < 5  # Retry-After: 1, honoured once

    def test_the_retries_are_bounded(self, fetal_client, live_server, integrator, study, settings):
        api = fetal_client.FetalClient(live_server.url, integrator.username, PASSWORD)
        statuses = _seen(api)
        settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "user": "1/minute"}
        api.worklist(study.id)
        started = time.monotonic()

        # Retry-After: 60 is over max_wait_s: no wait, no retry.
        with pytest.raises(fetal_client.ApiError) as caught:
            api.worklist(study.id)

        assert (caught.value.status, caught.value.code) == (429, "throttled")
        assert statuses == [200, 429]
        assert time.monotonic() - started < 1

        # A wait within max_wait_s, but no attempts left.
        api.max_attempts, api.max_wait_s = 1, 120
        with pytest.raises(fetal_client.ApiError):
            api.worklist(study.id)

        assert statuses == [200, 429, 429]
        assert time.monotonic() - started < 1


def test_the_changelog_leads_with_the_schema_version(settings):
    changelog = (Path(settings.BASE_DIR) / "docs" / "api-changelog.md").read_text()

    newest = re.search(r"^## (\d+\.\d+\.\d+)", changelog, re.MULTILINE)

    assert newest, "docs/api-changelog.md has no '## MAJOR.MINOR.PATCH' release heading"
    assert newest.group(1) == settings.SPECTACULAR_SETTINGS["VERSION"]
    assert settings.SPECTACULAR_SETTINGS["VERSION"].startswith("1.")  # the major is the path's: /api/v1/
