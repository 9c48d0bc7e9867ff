"""docs/openapi.yaml generates a working Python client: openapi-python-client (pinned in requirements-dev.txt)
builds it with docs/openapi-client.yaml, as docs/api.md says, and the integrator walkthrough runs through its
typed functions against the live server, a real Celery worker and the tiny model.

Every call is a generated function and every answer a parsed model: a schema that advertises the wrong body
type, an undeclared field type or a response shape the server does not send fails here."""

from __future__ import annotations

import datetime
import hashlib
import importlib
import subprocess
import sys
import uuid
from io import BytesIO
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import wait_for
from tests.images import png_bytes

PASSWORD = "correct-horse-battery"  # tests.factories.UserFactory's password
DOCS = Path(settings.BASE_DIR) / "docs"


@pytest.fixture(scope="module")
def fetal_client_package(tmp_path_factory):
    """The package generated from the committed schema (offline: it reads the file only), imported."""
    root = tmp_path_factory.mktemp("generated-client")
    command = [
        sys.executable,
        "-m",
        "openapi_python_client",
        "generate",
        "--path",
        str(DOCS / "openapi.yaml"),
        "--config",
        str(DOCS / "openapi-client.yaml"),
        "--meta",
        "none",
        "--output-path",
        str(root / "fetal_client"),
        "--fail-on-warning",  # an operation the generator had to leave out fails the test
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module("fetal_client")
    finally:
        sys.path.remove(str(root))
        for name in [name for name in sys.modules if name == "fetal_client" or name.startswith("fetal_client.")]:
            del sys.modules[name]


@pytest.fixture
def api(fetal_client_package):
    """The generated package's modules, by the names an integrator would import."""
    return {name: importlib.import_module(f"fetal_client.{name}") for name in ("client", "models", "types")}


def _v1(operation: str):
    return importlib.import_module(f"fetal_client.api.v1.{operation}")


def _ok(response, model, status: int = 200):
    """The response's parsed model, after checking its status (an Error's JSON is shown otherwise)."""
    assert response.status_code == status, (response.status_code, response.content)
    assert isinstance(response.parsed, model), type(response.parsed)
    return response.parsed


def _log_in(api, base_url: str, username: str):
    models, client = api["models"], api["client"]
    token = _ok(
        _v1("auth_token_create").sync_detailed(
            client=client.Client(base_url=base_url),
            body=models.TokenObtainInputRequest(username=username, password=PASSWORD),
        ),
        models.TokenOutput,
    )
    return client.AuthenticatedClient(base_url=base_url, token=token.token, prefix="Token", timeout=30)


def _register(api, client):
    """A fresh MRN, so that the walkthrough runs again and again; Location names the new patient."""
    models = api["models"]
    created = _v1("patients_create").sync_detailed(
        client=client,
        body=models.PatientListCreateInputRequest(
            mrn=f"GEN-{uuid.uuid4().hex[:12]}",
            given_name="Maria",
            family_name="Rossi",
            birth_date=datetime.date(1991, 4, 2),
        ),
        idempotency_key=str(uuid.uuid4()),
    )
    patient = _ok(created, models.PatientOutput, 201)
    assert created.headers["Location"] == f"/api/v1/patients/{patient.id}/"
    found = _v1("patients_by_mrn_retrieve").sync_detailed(patient.mrn, client=client)
    assert _ok(found, models.PatientOutput).id == patient.id
    return patient


def _upload(api, client, study_id: int, data: bytes):
    """One file, with a key chosen first: the retry after a (pretend) timeout is the stored answer."""
    models, types = api["models"], api["types"]
    key = str(uuid.uuid4())

    def send():
        body = models.ImageUploadInputRequest(
            file=[types.File(payload=BytesIO(data), file_name="head.png", mime_type="image/png")]
        )
        return _v1("studies_images_create").sync_detailed(study_id, client=client, body=body, idempotency_key=key)

    first, retried = send(), send()
    image = _ok(first, models.ImageOutput, 202)
    assert _ok(retried, models.ImageOutput, 202).id == image.id
    assert retried.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    return image


def _finished(api, client, image_id: int):
    models = api["models"]
    image = _ok(_v1("images_retrieve").sync_detailed(image_id, client=client), models.ImageOutput)
    return image if image.job.status in (models.JobStatusEnum.SUCCEEDED, models.JobStatusEnum.FAILED) else None


@pytest.mark.e2e
def test_the_walkthrough_through_the_generated_client(api, live_server, celery_worker, active_model, integrator):
    models = api["models"]
    client = _log_in(api, live_server.url, integrator.username)
    patient = _register(api, client)
    study = _ok(
        _v1("studies_create").sync_detailed(
            client=client,
            body=models.StudyListCreateInputRequest(patient=patient.id, exam_date=datetime.date.today()),
            idempotency_key=str(uuid.uuid4()),
        ),
        models.StudyOutput,
        201,
    )
    data = png_bytes(width=96, height=80, seed=21)
    uploaded = _upload(api, client, study.id, data)

    image = wait_for(lambda: _finished(api, client, uploaded.id), timeout=60)
    assert image.job.status == models.JobStatusEnum.SUCCEEDED, image.job.error
    prediction = _ok(
        _v1("predictions_retrieve").sync_detailed(image.prediction.id, client=client), models.PredictionOutput
    )
    assert prediction.image == image.id and isinstance(prediction.label, models.FetalPlaneEnum)
    assert abs(sum(prediction.probabilities.additional_properties.values()) - 1) < 1e-3

    def worklist(needs_review: bool) -> set[int]:
        page = _v1("images_list").sync_detailed(
            client=client, needs_review=needs_review, reviewed=False, study=study.id
        )
        return {item.id for item in _ok(page, models.PaginatedImageOutputList).results}

    assert worklist(prediction.needs_review) == {image.id}
    assert worklist(not prediction.needs_review) == set()

    original = _ok(_v1("images_original_retrieve").sync_detailed(image.id, client=client), api["types"].File)
    assert hashlib.sha256(original.payload.read()).hexdigest() == image.sha256 == hashlib.sha256(data).hexdigest()
    history = _ok(_v1("images_history_list").sync_detailed(image.id, client=client), list)
    assert all(isinstance(entry, models.HistoryEntryOutput) for entry in history)
    assert {entry.record for entry in history} >= {models.RecordEnum.IMAGE, models.RecordEnum.PREDICTION}
