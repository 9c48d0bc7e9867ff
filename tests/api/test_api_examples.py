"""The schema's examples are real answers: a scenario calls every API operation once for each status the schema
documents for it, and records the answers in docs/api-examples.json, which fetalsite.core.api_examples attaches
to the schema. The test fails when an operation documents a status the scenario could not produce (or produces
one it does not document), and when the committed file differs from what the scenario records. After a change
to what the API answers, refresh both files:

    UPDATE_API_EXAMPLES=1 .venv/bin/python -m pytest tests/api/test_api_examples.py
    .venv/bin/python manage.py spectacular --file docs/openapi.yaml --validate --fail-on-warn

The scenario repeats exactly: ids restart from 1, the clock (``timezone.now``) stands still but for the
scenario's own ticks, and tokens, the one random value an answer shows, are replaced by a fixed stand-in."""

from __future__ import annotations

import datetime
import io
import json
import os
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import av
import numpy as np
import pytest
from django.apps import apps
from django.conf import settings as django_settings
from django.core.cache import caches
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.color import no_style
from django.db import connection
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from biometry import services as biometry_services
from biometry.ml.ellipse import Ellipse, ellipse_fit
from biometry.ml.segmentation import HeadFinding
from biometry.models import MeasurementJob
from classifier import services as classifier_services
from classifier.labels import PLANE_LABELS
from classifier.ml.frames import iter_frames
from classifier.ml.inference import ClassifierResult, FrameScores
from classifier.ml.keyframes import KeyFramePicker
from classifier.models import ClassificationJob, Prediction
from fetalsite.accounts.roles import Role
from fetalsite.core.api_examples import JSON, examples_file
from patients import services as patient_services
from patients.models import Patient, Study, UltrasoundImage
from tests.biometry.conftest import card_without_model
from tests.factories import ClinicFactory, UserFactory
from tests.images import image_bytes, png_bytes

UPDATE = os.environ.get("UPDATE_API_EXAMPLES") == "1"
REFRESH = "UPDATE_API_EXAMPLES=1 .venv/bin/python -m pytest tests/api/test_api_examples.py"
PASSWORD = "correct-horse-battery"
START = datetime.datetime(2026, 11, 27, 9, 58, tzinfo=datetime.UTC)
TOKEN_STAND_IN = "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"
NOT_THROTTLED = {"user": "100000/minute", "anon": "100000/minute", "login": "100000/minute"}


class Clock:
    """``timezone.now`` for the scenario: it stands still but for the scenario's ticks, so answers repeat."""

    def __init__(self, start: datetime.datetime):
        self.now = start

    def __call__(self) -> datetime.datetime:
        return self.now

    def tick(self, seconds: float = 1.5) -> None:
        self.now += datetime.timedelta(seconds=seconds)


@dataclass
class Call:
    operation: str
    name: str
    method: str
    path: str
    status: int
    body: Any = None  # a JSON body; for an upload, the files as (name, bytes) pairs
    client: str = "integrator"
    key: str | None = None  # Idempotency-Key
    other_body: Any = None  # the same key with this body: the 422 of an idempotent operation
    raw: tuple[bytes, str] | None = None  # a body sent as it is, with its Content-Type
    environ: dict[str, str] = field(default_factory=dict)

    @property
    def upload(self) -> bool:
        return isinstance(self.body, list)


class Recorder:
    """Sends the scenario's calls, checks each status, and keeps each JSON answer by operation, status, name."""

    def __init__(self, clock: Clock, settings, documented: dict[str, set[str]]):
        self.clients: dict[str, APIClient] = {"anonymous": APIClient()}
        self.clock, self.settings, self.documented = clock, settings, documented
        self.recorded: dict[str, dict[str, dict[str, dict]]] = defaultdict(lambda: defaultdict(dict))
        self.sent: dict[str, set[int]] = defaultdict(set)
        self.first_success: dict[str, Call] = {}
        self.keys: dict[str, str] = {}  # operation -> the Idempotency-Key its success used

    def send(self, operation: str, name: str, request: str, status: int, body: Any = None, **options):
        """``request`` is "METHOD /path"; ``options`` are the other fields of ``Call``."""
        method, path = request.split(" ", 1)
        return self.send_call(Call(operation, name, method.lower(), path, status, body, **options))

    def send_call(self, call: Call):
        self.clock.tick()
        response = self._request(call)
        body = response.json() if response.get("Content-Type", "").startswith("application/json") else None
        assert response.status_code == call.status, f"{call.operation} / {call.name}: {response.status_code} {body}"
        self.sent[call.operation].add(call.status)
        if 200 <= call.status < 300:
            self.first_success.setdefault(call.operation, call)
            if call.key:
                self.keys.setdefault(call.operation, call.key)
        if body is not None:
            self.recorded[call.operation][str(call.status)][call.name] = {
                "method": call.method.upper(),
                "path": call.path,
                "request": None if call.upload or call.raw else call.body,
                "response": _with_stand_ins(body),
            }
        return response

    def _request(self, call: Call):
        client = self.clients[call.client]
        environ = dict(call.environ)
        if call.key:
            environ["HTTP_IDEMPOTENCY_KEY"] = call.key
        method = getattr(client, call.method)
        if call.raw is not None:
            return client.generic(call.method.upper(), call.path, call.raw[0], content_type=call.raw[1], **environ)
        if call.upload:
            files = [SimpleUploadedFile(name, data) for name, data in call.body]
            return method(call.path, {"file": files}, format="multipart", **environ)
        if call.body is None:
            return method(call.path, **environ)
        return method(call.path, json.dumps(call.body), content_type="application/json", **environ)

    def probe(self, operation: str) -> None:
        """The answers every operation of its kind gives, sent like the operation's first success: those its
        documented statuses still lack, and an idempotent operation's answers to a reused key."""
        base, documented = self.first_success[operation], self.documented[operation]

        def wanted(status: int) -> bool:
            return str(status) in documented and status not in self.sent[operation]

        def like_base(name: str, status: int, **changes) -> Call:
            fields = {"method": base.method, "path": base.path, "body": base.body, "client": base.client, **changes}
            return Call(operation, name, status=status, **fields)

        if wanted(400):
            self.send_call(like_base("Unknown query parameter", 400, path=_with_query(base.path, "sort=id")))
        if wanted(401):
            self.send_call(like_base("No token", 401, client="anonymous"))
        if wanted(413):
            too_large = b'{"notes": "' + b"x" * django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE + b'"}'
            self.send_call(like_base("Body over the size limit", 413, raw=(too_large, "application/json")))
        if wanted(415):
            self.send_call(like_base("Not JSON", 415, raw=(b"mrn=N-000123", "text/plain")))
        if base.key:
            self.send_call(like_base("Key sent again with another body", 422, key=base.key, body=base.other_body))
            other_key = next(key for op, key in self.keys.items() if op != operation)
            self.send_call(like_base("Key used for another URL", 409, key=other_key))
        if wanted(429):
            # A fresh count that allows nothing: the answer says how long to wait, as a real one does.
            caches[django_settings.API_THROTTLE_CACHE].clear()
            self.settings.API_THROTTLE_RATES = {"user": "0/minute", "anon": "0/minute", "login": "0/minute"}
            self.send_call(like_base("Too many requests", 429))
            self.settings.API_THROTTLE_RATES = NOT_THROTTLED


def _with_query(path: str, query: str) -> str:
    return f"{path}{'&' if '?' in path else '?'}{query}"


def _with_stand_ins(body: Any) -> Any:
    if isinstance(body, dict):
        return {key: TOKEN_STAND_IN if key == "token" else _with_stand_ins(value) for key, value in body.items()}
    if isinstance(body, list):
        return [_with_stand_ins(item) for item in body]
    return body


def _restart_ids() -> None:
    """Every table's next id is one more than its largest (1 when empty), as in a fresh database."""
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM sqlite_sequence")
        return
    statements = connection.ops.sequence_reset_sql(no_style(), apps.get_models(include_auto_created=True))
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def _documented_statuses() -> dict[str, set[str]]:
    """Each operation's statuses that answer JSON (a download's 200 carries bytes, no example)."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    operations = [
        operation
        for item in schema["paths"].values()
        for method, operation in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]
    return {
        operation["operationId"]: {
            status for status, response in operation["responses"].items() if JSON in response.get("content", {})
        }
        for operation in operations
    }


@dataclass
class World:
    clock: Clock
    users: dict[str, Any]
    ids: dict[str, int] = field(default_factory=dict)


def _build_world(settings, monkeypatch) -> World:
    _restart_ids()
    clock = Clock(START)
    monkeypatch.setattr(timezone, "now", clock)
    settings.API_THROTTLE_RATES = NOT_THROTTLED
    # The documented deployment whose clinicians review through their own tool (docs/api.md).
    settings.API_TOKEN_ROLES = ["integrator", "clinician"]
    settings.MODELS_DIR = Path(settings.BASE_DIR) / "models"
    north, south = ClinicFactory(name="North Clinic"), ClinicFactory(name="South Clinic")
    users = {
        "api_north": UserFactory(username="api_north", clinic=north, role=Role.INTEGRATOR),
        "clin_north": UserFactory(username="clin_north", clinic=north, role=Role.CLINICIAN),
        "sono_north": UserFactory(username="sono_north", clinic=north, role=Role.SONOGRAPHER),
        "admin_north": UserFactory(username="admin_north", clinic=north, role=Role.CLINIC_ADMIN, is_staff=True),
        "guest_north": UserFactory(username="guest_north", clinic=north, role=None),  # an account without a role
        "sono_south": UserFactory(username="sono_south", clinic=south, role=Role.SONOGRAPHER),
    }
    card = settings.MODELS_DIR / "fetal-planes-v3.card.json"
    classifier_services.model_version_register(card_path=card, activate=True)
    # Brain planes queue their measurement with this model's name; the scenario saves what it finds (no TensorFlow).
    settings.BIOMETRY_MODEL_CARD = card_without_model(tempfile.mkdtemp(prefix="examples-"), name="fetal-head")
    return World(clock=clock, users=users)


def _clients(world: World) -> dict[str, APIClient]:
    def token(username: str) -> APIClient:
        client = APIClient()
        key, _ = Token.objects.get_or_create(user=world.users[username])
        client.credentials(HTTP_AUTHORIZATION=f"Token {key.key}")
        return client

    def session(username: str, **kwargs) -> APIClient:
        client = APIClient(**kwargs)
        client.force_login(world.users[username])
        return client

    return {
        "anonymous": APIClient(),
        "integrator": token("api_north"),  # the token its login example received
        "clinician": token("clin_north"),
        # People use the web app; their session reaches the API too (with the page's CSRF token, which the test
        # client stands in for): that is where a role without a right answers 403.
        "clinic_admin_session": session("admin_north"),
        "guest_session": session("guest_north"),
        "sonographer_session": session("sono_north"),
        "session_without_csrf_token": session("clin_north", enforce_csrf_checks=True),
    }


def _classify(world: World, image_id: int, probabilities: tuple[float, ...], *, similarity: float) -> None:
    """What the worker does, through the same services, with chosen numbers (no TensorFlow here)."""
    job = ClassificationJob.objects.get(image_id=image_id)
    world.clock.tick(0.4)
    classifier_services.job_start(job_id=job.id)
    world.clock.tick(0.6)
    by_label = dict(zip(PLANE_LABELS, probabilities, strict=True))
    label = max(by_label, key=by_label.get)
    result = ClassifierResult(
        label=label,
        confidence=by_label[label],
        probabilities=by_label,
        needs_review=by_label[label] < 0.68 or similarity < 0.66,  # the v3 card's thresholds
        inference_ms=27.4,
        similarity=similarity,
    )
    classifier_services.prediction_save(job_id=job.id, result=result, heatmap_png=None)


def _measure(world: World, image_id: int) -> int:
    """What the measure worker does, through the same services: a skull drawn where the model would find it."""
    job = MeasurementJob.objects.get(image_id=image_id)
    world.clock.tick(0.3)
    biometry_services.measurement_job_start(job_id=job.id)
    world.clock.tick(0.2)
    mask = Ellipse(161.3, 118.6, 92.4, 71.8, 0.21).raster((240, 320))
    finding = HeadFinding(fit=ellipse_fit(mask), inference_ms=61.3, total_ms=78.9)
    biometry_services.measurement_save(job_id=job.id, finding=finding, runtime="litert")
    return job.measurement.id


def _fail(world: World, image_id: int, reason: str) -> None:
    job = ClassificationJob.objects.get(image_id=image_id)
    world.clock.tick(0.4)
    classifier_services.job_start(job_id=job.id)
    world.clock.tick(0.6)
    classifier_services.job_mark_failed(job_id=job.id, reason=reason)


# ---- The scenario, one operation after another: its own calls, then the probes --------------------

MARIA = {"mrn": "N-000123", "given_name": "Maria", "family_name": "Rossi", "birth_date": "1991-04-02"}
GIULIA = {"given_name": "Giulia", "family_name": "Verdi", "birth_date": "1988-09-14"}
HOSP = f"/api/v1/patients/by-mrn/{quote('HOSP/000125', safe='')}/"  # an MRN with a slash, percent-encoded
HEAD = ("head-01.png", png_bytes(320, 240, seed=11))
THORAX = ("thorax-02.jpg", image_bytes("JPEG", width=320, height=240, seed=12))
FEMUR = ("femur-03.bmp", image_bytes("BMP", width=160, height=120, seed=13))
LATE = ("abdomen-04.png", png_bytes(160, 120, seed=14))


def _tokens(rec: Recorder) -> None:
    op, login = "auth_token_create", "POST /api/v1/auth/token/"
    rec.send(op, "Log in", login, 200, {"username": "api_north", "password": PASSWORD}, client="anonymous")
    rec.send(op, "Missing password", login, 400, {"username": "api_north"}, client="anonymous")
    rec.send(op, "Wrong password", login, 401, {"username": "api_north", "password": "wrong"}, client="anonymous")
    no_api = {"username": "sono_north", "password": PASSWORD}
    rec.send(op, "A role without API access", login, 403, no_api, client="anonymous")
    rec.probe(op)


def _patient_create(rec: Recorder, world: World) -> None:
    op, create = "patients_create", "POST /api/v1/patients/"
    key, marta = "6a1f5c1e-2b7d-4e0a-9c3b-1d2e3f4a5b6c", {**MARIA, "given_name": "Marta"}
    world.ids["maria"] = rec.send(op, "Register a patient", create, 201, MARIA, key=key, other_body=marta).json()["id"]
    rec.send(op, "Missing field", create, 400, {"mrn": "N-000124", "given_name": "Anna"})
    rec.send(op, "Unknown field", create, 400, {**MARIA, "mrn": "N-000124", "clinic": 2})
    rec.send(op, "MRN already registered", create, 409, marta)
    rec.send(op, "A role that may not register", create, 403, {**MARIA, "mrn": "N-9"}, client="clinic_admin_session")
    world.clock.tick()
    patient_services.patient_create(
        created_by=world.users["sono_north"], mrn="N-000124", given_name="Anna", family_name="Bianchi"
    )
    south = patient_services.patient_create(
        created_by=world.users["sono_south"], mrn="S-000777", given_name="Ines", family_name="Costa"
    )
    world.ids["south_patient"] = south.id


def _patient_reads_and_edits(rec: Recorder, world: World) -> None:
    maria, south = world.ids["maria"], world.ids["south_patient"]
    op = "patients_list"
    rec.send(op, "Search by name", "GET /api/v1/patients/?search=rossi", 200)
    rec.send(op, "A mistyped parameter", "GET /api/v1/patients/?serach=rossi", 400)
    rec.send(op, "A role that may not read patients", "GET /api/v1/patients/", 403, client="guest_session")
    rec.probe(op)

    op = "patients_retrieve"
    rec.send(op, "A patient", f"GET /api/v1/patients/{maria}/", 200)
    rec.send(op, "Another clinic's patient", f"GET /api/v1/patients/{south}/", 404)
    rec.probe(op)

    op, edit = "patients_partial_update", f"PATCH /api/v1/patients/{maria}/"
    rec.send(op, "Correct the name", edit, 200, {"family_name": "Rossi-Bianchi"})
    rec.send(op, "A birth date in the future", edit, 400, {"birth_date": "2031-01-01"})
    rec.send(op, "A role that may not edit", edit, 403, {"family_name": "Rossi"}, client="clinic_admin_session")
    rec.send(op, "Another clinic's patient", f"PATCH /api/v1/patients/{south}/", 404, {"family_name": "Rossi"})
    rec.send(op, "MRN of another patient", edit, 409, {"mrn": "N-000124"})
    rec.probe(op)


def _by_mrn(rec: Recorder) -> None:
    op, put = "patients_by_mrn_update", f"PUT {HOSP}"
    key, undated = "0b8e7d6c-5a4f-4e3d-8c2b-1a0f9e8d7c6b", {**GIULIA, "birth_date": None}
    rec.send(op, "Registered now", put, 201, GIULIA, key=key, other_body=undated)
    rec.send(op, "Registered before with these details", put, 200, GIULIA)
    rec.send(op, "Unknown field", put, 400, {**GIULIA, "mrn": "HOSP/000126"})
    rec.send(op, "A role that may not register", put, 403, GIULIA, client="clinic_admin_session")
    anna = {"given_name": "Anna", "family_name": "Bianchi", "birth_date": "1990-05-17"}
    rec.send(op, "Registered with other details", "PUT /api/v1/patients/by-mrn/N-000124/", 409, anna)
    rec.probe(op)
    rec.probe("patients_create")  # its key probes need another idempotent operation's key: this one's

    op = "patients_by_mrn_retrieve"
    rec.send(op, "A patient", f"GET {HOSP}", 200)
    rec.send(op, "Not in your clinic", "GET /api/v1/patients/by-mrn/S-000777/", 404)
    rec.send(op, "Longer than an MRN can be", f"GET /api/v1/patients/by-mrn/{'9' * 65}/", 400)
    rec.send(op, "A role that may not read patients", f"GET {HOSP}", 403, client="guest_session")
    rec.probe(op)


def _study_create(rec: Recorder, world: World) -> None:
    maria = world.ids["maria"]
    op, create = "studies_create", "POST /api/v1/studies/"
    body = {"patient": maria, "exam_date": "2026-11-27", "gestational_age_weeks": 21, "gestational_age_days": 3}
    body["notes"] = "Routine anomaly scan."
    options = {"key": "c4d3b2a1-9f8e-4d7c-8b6a-5f4e3d2c1b0a", "other_body": {**body, "gestational_age_weeks": 22}}
    world.ids["study"] = rec.send(op, "Open a study", create, 201, body, **options).json()["id"]
    rec.send(op, "Weeks out of range", create, 400, {**body, "gestational_age_weeks": 50})
    rec.send(op, "A role that may not open studies", create, 403, body, client="clinic_admin_session")
    rec.send(op, "Another clinic's patient", create, 404, {**body, "patient": world.ids["south_patient"]})
    rec.probe(op)
    world.clock.tick()
    closed = patient_services.study_create(
        patient=Patient.objects.get(id=maria),
        exam_date=datetime.date(2026, 10, 2),
        gestational_age_weeks=13,
        created_by=world.users["sono_north"],
    )
    signed = patient_services.study_sign_off(study=closed, signed_by=world.users["clin_north"], acknowledged=True)
    world.ids["closed_study"] = signed.id


def _study_reads_and_edits(rec: Recorder, world: World) -> None:
    study = world.ids["study"]
    op = "studies_list"
    rec.send(op, "A patient's studies", f"GET /api/v1/studies/?patient={world.ids['maria']}", 200)
    rec.send(op, "An unknown status", "GET /api/v1/studies/?status=CLOSED", 400)
    rec.send(op, "A role that may not read studies", "GET /api/v1/studies/", 403, client="guest_session")
    rec.probe(op)

    op = "studies_retrieve"
    rec.send(op, "A study", f"GET /api/v1/studies/{study}/", 200)
    rec.send(op, "No such study", "GET /api/v1/studies/999/", 404)
    rec.probe(op)

    op, edit = "studies_partial_update", f"PATCH /api/v1/studies/{study}/"
    rec.send(op, "Add notes", edit, 200, {"notes": "Routine anomaly scan. Placenta anterior."})
    rec.send(op, "An exam date in the future", edit, 400, {"exam_date": "2031-01-01"})
    rec.send(op, "A role that may not edit", edit, 403, {"notes": ""}, client="clinic_admin_session")
    rec.send(op, "No such study", "PATCH /api/v1/studies/999/", 404, {"notes": ""})
    rec.probe(op)


def _uploads(rec: Recorder, world: World) -> None:
    op, upload = "studies_images_create", f"POST /api/v1/studies/{world.ids['study']}/images/"
    key = "9d8c7b6a-5f4e-4d3c-8b2a-190f8e7d6c5b"
    world.ids["head"] = rec.send(op, "One file", upload, 202, [HEAD], key=key, other_body=[LATE]).json()["id"]
    batch = rec.send(op, "Two files", upload, 202, [THORAX, FEMUR]).json()["results"]
    world.ids["thorax"], world.ids["femur"] = (result["image"]["id"] for result in batch)
    rec.send(op, "These bytes are in the study already", upload, 200, [HEAD])
    rec.send(op, "Not an image", upload, 400, [("notes.png", b"not an image at all")])
    rec.send(op, "A role that may not upload", upload, 403, [LATE], client="clinic_admin_session")
    rec.send(op, "No such study", "POST /api/v1/studies/999/images/", 404, [LATE])
    rec.send(op, "A signed-off study", f"POST /api/v1/studies/{world.ids['closed_study']}/images/", 409, [LATE])
    limit = django_settings.UPLOAD_MAX_BYTES * django_settings.UPLOAD_MAX_FILES_PER_REQUEST + 2 * 1024 * 1024
    rec.send(op, "Body over the size limit", upload, 413, [LATE], environ={"CONTENT_LENGTH": str(limit)})
    rec.send(op, "Not multipart", upload, 415, raw=(b'{"file": "head-01.png"}', "application/json"))
    rec.probe(op)
    _classify(world, world.ids["head"], (0.91, 0.04, 0.03, 0.02), similarity=0.87)
    _classify(world, world.ids["thorax"], (0.05, 0.55, 0.38, 0.02), similarity=0.79)
    _fail(world, world.ids["femur"], "OSError: image file is truncated (24 bytes not processed)")
    world.ids["measurement"] = _measure(world, world.ids["head"])  # the head is a brain plane: it is measured
    world.clock.tick()
    study = Study.objects.get(id=world.ids["study"])
    late = patient_services.image_upload(
        study=study, data=LATE[1], filename=LATE[0], uploaded_by=world.users["sono_north"]
    )
    world.ids["late"] = late.image.id


def _image_reads_and_review(rec: Recorder, world: World) -> None:
    head, thorax, late = world.ids["head"], world.ids["thorax"], world.ids["late"]
    op = "images_list"
    worklist = f"GET /api/v1/images/?study={world.ids['study']}&needs_review=true&reviewed=false"
    rec.send(op, "The review worklist", worklist, 200)
    rec.send(op, "Not a boolean", "GET /api/v1/images/?needs_review=1", 400)
    rec.send(op, "A role that may not read images", "GET /api/v1/images/", 403, client="guest_session")
    rec.probe(op)

    op, clinician = "images_review", {"client": "clinician"}
    review = {"label": "fetal_abdomen", "comment": "Stomach bubble and umbilical vein: abdominal plane."}
    rec.send(op, "Correct the label", f"POST /api/v1/images/{thorax}/review/", 200, review, **clinician)
    rec.send(op, "Not a plane", f"POST /api/v1/images/{head}/review/", 400, {"label": "fetal_head"}, **clinician)
    rec.send(op, "Not a clinician", f"POST /api/v1/images/{head}/review/", 403, {"label": "fetal_brain"})
    rec.send(op, "No such image", "POST /api/v1/images/999/review/", 404, {"label": "fetal_brain"}, **clinician)
    not_yet = {"label": "fetal_abdomen"}
    rec.send(op, "Not classified yet", f"POST /api/v1/images/{late}/review/", 409, not_yet, **clinician)
    rec.probe(op)
    _image_exclude_and_include(rec, late, clinician)

    op = "images_retrieve"
    rec.send(op, "A classified image", f"GET /api/v1/images/{head}/", 200)
    rec.send(op, "No such image", "GET /api/v1/images/999/", 404)
    rec.probe(op)

    op = "images_history_list"
    rec.send(op, "Upload, classification and review", f"GET /api/v1/images/{thorax}/history/", 200)
    rec.send(op, "No such image", "GET /api/v1/images/999/history/", 404)
    rec.probe(op)


def _measurements(rec: Recorder, world: World) -> None:
    measurement = world.ids["measurement"]
    op, path = "measurements_retrieve", f"GET /api/v1/measurements/{measurement}/"
    rec.send(op, "A brain plane's head, not calibrated", path, 200)
    rec.send(op, "No such measurement", "GET /api/v1/measurements/999/", 404)
    rec.probe(op)

    op, review, clinician = (
        "measurements_review",
        f"POST /api/v1/measurements/{measurement}/review/",
        {"client": "clinician"},
    )
    adjust = {
        "action": "adjust",
        "axis_ends": [[70.0, 99.5], [252.0, 138.0], [176.0, 49.0], [146.5, 188.0]],
        "comment": "Calipers moved onto the outer edge of the skull.",
    }
    rec.send(op, "Adjust the axes", review, 200, adjust, **clinician)
    rec.send(
        op, "Three axis ends", review, 400, {"action": "adjust", "axis_ends": adjust["axis_ends"][:3]}, **clinician
    )
    rec.send(op, "Not a clinician", review, 403, {"action": "accept"})
    rec.send(op, "No such measurement", "POST /api/v1/measurements/999/review/", 404, {"action": "accept"}, **clinician)
    rec.probe(op)


def _image_calibration(rec: Recorder, world: World) -> None:
    """A known distance drawn on the head (320 x 240 px): 40 mm over 160 px, so its measurement gets millimetres."""
    head, clinician = world.ids["head"], {"client": "clinician"}
    op, path = "images_calibrate", f"POST /api/v1/images/{head}/calibration/"
    line = {"start": [96.0, 120.0], "end": [256.0, 120.0], "distance_mm": 40.0}
    rec.send(op, "A known distance drawn on the image", path, 200, line, **clinician)
    rec.send(op, "A line shorter than a pixel", path, 400, {**line, "end": line["start"]}, **clinician)
    rec.send(op, "An integration's token", path, 403, line)
    rec.send(op, "No such image", "POST /api/v1/images/999/calibration/", 404, line, **clinician)
    rec.probe(op)


def _image_exclude_and_include(rec: Recorder, image: int, clinician: dict) -> None:
    op, path = "images_exclude", f"POST /api/v1/images/{image}/exclude/"
    rec.send(op, "A test image", path, 200, {"reason": "test_image", "comment": "Phantom scan"}, **clinician)
    rec.send(op, "An unknown reason", path, 400, {"reason": "blurry"}, **clinician)
    rec.send(op, "Not a clinician", path, 403, {"reason": "test_image"})
    rec.send(op, "No such image", "POST /api/v1/images/999/exclude/", 404, {"reason": "test_image"}, **clinician)
    rec.probe(op)

    op, path = "images_include", f"POST /api/v1/images/{image}/include/"
    rec.send(op, "Included again", path, 200, **clinician)
    rec.send(op, "A body where none is expected", path, 400, {"reason": "test_image"}, **clinician)
    rec.send(op, "Not a clinician", path, 403)
    rec.send(op, "No such image", "POST /api/v1/images/999/include/", 404, **clinician)
    rec.probe(op)


def _image_bytes(rec: Recorder, world: World) -> None:
    for op, suffix in (("images_file_retrieve", "file"), ("images_original_retrieve", "original")):
        rec.send(op, "The bytes", f"GET /api/v1/images/{world.ids['head']}/{suffix}/", 200)
        rec.send(op, "No such image", f"GET /api/v1/images/999/{suffix}/", 404)
        rec.probe(op)
    op, heatmap = "images_heatmap_retrieve", f"GET /api/v1/images/{world.ids['head']}/heatmap/"
    rec.send(op, "Being made: this first request queued it", heatmap, 202)
    # Meanwhile the heatmaps worker makes it (the scenario has no worker: it stores a stand-in PNG).
    made = default_storage.save("heatmaps/example.png", ContentFile(png_bytes(seed=4)))
    Prediction.objects.filter(job__image_id=world.ids["head"]).update(heatmap=made)
    rec.send(op, "The heatmap", heatmap, 200)
    rec.send(op, "No such image", "GET /api/v1/images/999/heatmap/", 404)
    rec.probe(op)
    femur = world.ids["femur"]
    UltrasoundImage.objects.filter(id=femur).update(original=None)  # as uploaded before originals were kept
    rec.send("images_original_retrieve", "Original not kept", f"GET /api/v1/images/{femur}/original/", 404)


def _jobs(rec: Recorder, world: World) -> None:
    head_job, femur_job = (ClassificationJob.objects.get(image_id=world.ids[name]).id for name in ("head", "femur"))
    op = "jobs_list"
    rec.send(op, "Failed jobs", "GET /api/v1/jobs/?status=FAILED", 200)
    rec.send(op, "An unknown status", "GET /api/v1/jobs/?status=DONE", 400)
    rec.send(op, "A role that may not read jobs", "GET /api/v1/jobs/", 403, client="guest_session")
    rec.probe(op)

    op = "jobs_retrieve"
    rec.send(op, "A finished job", f"GET /api/v1/jobs/{head_job}/", 200)
    rec.send(op, "No such job", "GET /api/v1/jobs/999/", 404)
    rec.probe(op)

    op, retry = "jobs_retry", f"POST /api/v1/jobs/{femur_job}/retry/"
    rec.send(op, "Retry a failed job", retry, 202)
    rec.send(op, "A body this operation does not take", retry, 400, {"status": "QUEUED"})
    rec.send(op, "A role that may not retry", retry, 403, client="clinic_admin_session")
    rec.send(op, "No such job", "POST /api/v1/jobs/999/retry/", 404)
    rec.send(op, "A job that succeeded", f"POST /api/v1/jobs/{head_job}/retry/", 409)
    rec.probe(op)


def _predictions_and_models(rec: Recorder, world: World) -> None:
    prediction = ClassificationJob.objects.get(image_id=world.ids["thorax"]).prediction.id
    op = "predictions_list"
    rec.send(op, "Flagged for review", "GET /api/v1/predictions/?needs_review=true", 200)
    rec.send(op, "Not a plane", "GET /api/v1/predictions/?label=fetal_head", 400)
    rec.send(op, "A role that may not read predictions", "GET /api/v1/predictions/", 403, client="guest_session")
    rec.probe(op)

    op = "predictions_retrieve"
    rec.send(op, "A reviewed prediction", f"GET /api/v1/predictions/{prediction}/", 200)
    rec.send(op, "No such prediction", "GET /api/v1/predictions/999/", 404)
    rec.probe(op)

    op = "model_versions_list"
    rec.send(op, "The registered versions", "GET /api/v1/model-versions/", 200)
    rec.send(op, "A role that may not read models", "GET /api/v1/model-versions/", 403, client="guest_session")
    rec.probe(op)

    op = "model_versions_retrieve"
    rec.send(op, "A version", "GET /api/v1/model-versions/fetal-planes:3/", 200)
    rec.send(op, "No such version", "GET /api/v1/model-versions/fetal-planes:9/", 404)
    rec.probe(op)


def _analyse_clip(world: World, image_id: int, rows: list[tuple[float, ...]]) -> None:
    """What the worker does with a clip, through the same services, with chosen numbers per frame (no TensorFlow
    here): its real frames, the review rule and key-frame rule of the worker, then each key frame's own job with
    the numbers of its frame."""
    job = ClassificationJob.objects.get(image_id=image_id)
    world.clock.tick(0.4)
    classifier_services.job_start(job_id=job.id)
    world.clock.tick(1.2)
    with UltrasoundImage.objects.get(id=image_id).original.open("rb") as handle:
        frames = list(iter_frames(handle.read()))
    probabilities = np.array(rows, dtype=np.float32)
    flags = probabilities.max(axis=1) < 0.68  # the v3 card's review threshold (similarity: none here)
    picker = KeyFramePicker(PLANE_LABELS)
    picker.offer_batch(0, frames, probabilities, flags)
    scores = FrameScores(probabilities=probabilities, similarities=None, flags=flags, inference_ms=212.6)
    classifier_services.cine_frames_save(job_id=job.id, scores=scores, key_frames=picker.key_frames())
    for still in UltrasoundImage.objects.filter(clip_id=image_id).order_by("id"):
        _classify(world, still.id, rows[still.clip_frame_index], similarity=0.84)


# A probe's sweep: four frames of a brain, then four of a femur, the change of plane seen unsure.
CLIP_ROWS = [
    (0.81, 0.08, 0.06, 0.05),
    (0.86, 0.06, 0.05, 0.03),
    (0.9, 0.04, 0.04, 0.02),
    (0.62, 0.14, 0.12, 0.12),
    (0.31, 0.12, 0.17, 0.4),
    (0.07, 0.05, 0.1, 0.78),
    (0.04, 0.03, 0.05, 0.88),
    (0.05, 0.04, 0.06, 0.85),
]


def _mp4(frames: int) -> bytes:
    """A small H.264 clip of a drifting pattern, made here rather than from the data set, which not every checkout
    has: the recorded answers (the original's sha256 and size) must not depend on it."""
    y, x = np.mgrid[0:120, 0:160]
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("h264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for n in range(frames):
            grey = (128 + 100 * np.sin((x + 3 * n) / 9) * np.cos(y / 13)).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(np.stack([grey] * 3, axis=-1), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return buffer.getvalue()


CLIP = ("sweep-05.mp4", _mp4(len(CLIP_ROWS)))


def _clips(rec: Recorder, world: World) -> None:
    op, upload = "studies_images_create", f"POST /api/v1/studies/{world.ids['study']}/images/"
    clip = world.ids["clip"] = rec.send(op, "A cine loop (MP4)", upload, 202, [CLIP]).json()["id"]
    rec.settings.CINE_MAX_FRAMES = 4
    too_many = ("sweep-06.mp4", _mp4(6))
    rec.send(op, "A clip over the frame limit", upload, 400, [too_many])
    rec.settings.CINE_MAX_FRAMES = django_settings.CINE_MAX_FRAMES

    op, frames = "images_frames_retrieve", f"GET /api/v1/images/{clip}/frames/"
    rec.send(op, "Not analysed yet", frames, 409)
    _analyse_clip(world, clip, CLIP_ROWS)
    rec.send(op, "A clip's frames", frames, 200)
    rec.send(op, "A still", f"GET /api/v1/images/{world.ids['head']}/frames/", 404)
    rec.probe(op)

    op, playback = "images_playback_retrieve", f"GET /api/v1/images/{clip}/playback/"
    rec.send(op, "The video", playback, 200)
    rec.send(op, "Part of the video", playback, 206, environ={"HTTP_RANGE": "bytes=0-1023"})
    rec.send(op, "A range past the end", playback, 416, environ={"HTTP_RANGE": "bytes=99999999-"})
    rec.send(op, "A still", f"GET /api/v1/images/{world.ids['head']}/playback/", 404)
    rec.probe(op)

    op = "images_retrieve"
    rec.send(op, "A cine loop", f"GET /api/v1/images/{clip}/", 200)
    key_frame = UltrasoundImage.objects.filter(clip_id=clip).order_by("id").first()
    rec.send(op, "A key frame of a cine loop", f"GET /api/v1/images/{key_frame.id}/", 200)


def _sign_off_and_reopen(rec: Recorder, world: World) -> None:
    study, clinician = world.ids["study"], {"client": "clinician"}
    op, sign_off = "studies_sign_off", f"POST /api/v1/studies/{study}/sign-off/"
    rec.send(op, "Open items, not acknowledged", sign_off, 409, {}, **clinician)
    rec.send(op, "Not a boolean", sign_off, 400, {"acknowledged": "perhaps"}, **clinician)
    rec.send(op, "Not a clinician", sign_off, 403, {"acknowledged": True})
    rec.send(op, "No such study", "POST /api/v1/studies/999/sign-off/", 404, {"acknowledged": True}, **clinician)
    rec.send(op, "Sign off, the open items acknowledged", sign_off, 200, {"acknowledged": True}, **clinician)
    rec.probe(op)
    head = world.ids["head"]
    signed = "A signed-off study's image"
    rec.send(
        "images_exclude", signed, f"POST /api/v1/images/{head}/exclude/", 409, {"reason": "test_image"}, **clinician
    )
    rec.send("images_include", signed, f"POST /api/v1/images/{head}/include/", 409, **clinician)
    line = {"start": [96.0, 120.0], "end": [256.0, 120.0], "distance_mm": 40.0}
    rec.send("images_calibrate", signed, f"POST /api/v1/images/{head}/calibration/", 409, line, **clinician)
    measurement = f"POST /api/v1/measurements/{world.ids['measurement']}/review/"
    rec.send("measurements_review", signed, measurement, 409, {"action": "accept"}, **clinician)

    op, reopen = "studies_reopen", f"POST /api/v1/studies/{study}/reopen/"
    rec.send(op, "No reason", reopen, 400, {"reason": ""}, **clinician)
    rec.send(op, "Not a clinician", reopen, 403, {"reason": "Femur plane to be repeated."})
    rec.send(op, "No such study", "POST /api/v1/studies/999/reopen/", 404, {"reason": "Why"}, **clinician)
    rec.send(op, "Reopen", reopen, 200, {"reason": "Femur plane to be repeated."}, **clinician)
    rec.send(op, "An open study", reopen, 409, {"reason": "Femur plane to be repeated."}, **clinician)
    rec.probe(op)

    op, complete = "studies_complete", f"POST /api/v1/studies/{study}/complete/"
    rec.send(op, "A body field this operation does not take", complete, 400, {"status": "COMPLETED"}, **clinician)
    rec.send(op, "Not a clinician", complete, 403)
    rec.send(op, "No such study", "POST /api/v1/studies/999/complete/", 404, **clinician)
    rec.send(op, "Open items, not acknowledged", complete, 409, **clinician)
    rec.send(op, "Sign off (deprecated name)", complete, 200, {"acknowledged": True}, **clinician)
    rec.probe(op)


def _report_before_sign_off(rec: Recorder, world: World) -> None:
    rec.send("studies_report_retrieve", "Not signed off", f"GET /api/v1/studies/{world.ids['study']}/report/", 409)


def _report(rec: Recorder, world: World) -> None:
    """The signed study's report: a PDF, so its example is the status alone (as the image bytes' are)."""
    op = "studies_report_retrieve"
    rec.send(op, "The report", f"GET /api/v1/studies/{world.ids['study']}/report/", 200)
    rec.send(op, "No such study", "GET /api/v1/studies/999/report/", 404)
    rec.probe(op)


def _token_rotate_and_revoke(rec: Recorder) -> None:
    op, rotate, clinician = "auth_token_rotate", "POST /api/v1/auth/token/rotate/", {"client": "clinician"}
    rec.send(op, "A body this operation does not take", rotate, 400, {"token": "new"}, **clinician)
    rec.send(op, "A role without API access", rotate, 403, client="sonographer_session")
    rec.send(op, "Rotate", rotate, 200, **clinician)
    new_key = Token.objects.get(user__username="clin_north").key
    rec.clients["clinician"].credentials(HTTP_AUTHORIZATION=f"Token {new_key}")
    rec.probe(op)

    op, revoke = "auth_token_destroy", "DELETE /api/v1/auth/token/"
    rec.send(op, "A body this operation does not take", revoke, 400, {"token": "old"}, **clinician)
    rec.send(op, "A session without its CSRF token", revoke, 403, client="session_without_csrf_token")
    rec.send(op, "Revoke", revoke, 204, **clinician)
    rec.clients["clinician"] = rec.clients["integrator"]  # that token is gone: probe with another one
    rec.probe(op)


def run_scenario(settings, monkeypatch) -> tuple[Recorder, dict[str, set[str]]]:
    world = _build_world(settings, monkeypatch)
    documented = _documented_statuses()
    rec = Recorder(world.clock, settings, documented)
    _tokens(rec)
    rec.clients = _clients(world)
    for step in (
        _patient_create,
        _patient_reads_and_edits,
        lambda rec, world: _by_mrn(rec),
        _study_create,
        _study_reads_and_edits,
        _uploads,
        _image_reads_and_review,
        _measurements,
        _image_calibration,
        _image_bytes,
        _jobs,
        _predictions_and_models,
        _clips,
        _report_before_sign_off,
        _sign_off_and_reopen,
        _report,
        lambda rec, world: _token_rotate_and_revoke(rec),
    ):
        step(rec, world)
    return rec, documented


def _ordered(recorded: dict) -> dict:
    return {
        operation: {status: dict(recorded[operation][status]) for status in sorted(recorded[operation])}
        for operation in sorted(recorded)
    }


@pytest.mark.django_db
def test_every_documented_status_has_a_recorded_example_and_the_committed_file_is_current(settings, monkeypatch):
    rec, documented = run_scenario(settings, monkeypatch)
    recorded = _ordered(rec.recorded)

    missing = {op: sorted(statuses - set(recorded.get(op, {}))) for op, statuses in documented.items()}
    undocumented = {op: sorted(set(statuses) - documented.get(op, set())) for op, statuses in recorded.items()}
    assert not any(missing.values()), f"documented, yet the scenario produced none: {missing}"
    assert not any(undocumented.values()), f"produced, yet not documented: {undocumented}"
    if UPDATE:
        examples_file().write_text(json.dumps(recorded, indent=2, ensure_ascii=False) + "\n")
    committed = json.loads(examples_file().read_text()) if examples_file().exists() else {}
    # Compared as data: PostgreSQL's jsonb and SQLite keep a JSON field's keys in different orders.
    assert committed == json.loads(json.dumps(recorded)), f"docs/api-examples.json is stale; run: {REFRESH}"
