"""Every page and API route, every method, every role: the status each must answer, and for each refused write,
that nothing in the database changed. The page and API counterpart of the admin's attack matrix.

The routes come from the URLconf, so a route added without a row in EXPECTED fails here. A row reads, in the
order of ROLES, the status each role gets. The requests are real: a write is sent with a body that would
succeed for a role allowed to make it, so a refusal is the permission rule at work, not a bad request."""

from __future__ import annotations

import itertools
import json
import os
import tempfile
from urllib.parse import quote

import pytest
from django.contrib.auth.models import update_last_login
from django.contrib.auth.signals import user_logged_in
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import override_settings
from rest_framework.authtoken.models import Token

from classifier.labels import PLANE_LABELS
from classifier.models import ClassificationJob, ModelVersion
from fetalsite.accounts.roles import Role
from patients.services import dicom_instance_receive, image_upload, study_sign_off
from tests.api.conftest import classify, upload
from tests.cine_samples import make_mp4
from tests.dbstate import database_snapshot
from tests.dicom_samples import dicom_bytes
from tests.factories import StudyFactory, UserFactory
from tests.images import png_bytes
from tests.urlconf import all_routes, fill_route

ROLES = ("anonymous", "sonographer", "clinician", "integrator", "clinic_admin", "other_clinic", "superuser")
METHODS = ("get", "post", "put", "patch", "delete")
SKIPPED_PREFIXES = ("admin/",)  # the admin has its own matrix: tests/accounts/test_admin_matrix.py
_unique = itertools.count(1)

# route -> method -> statuses in ROLES order: anonymous, sonographer, clinician, integrator, clinic admin, a user of
# another clinic, superuser. A method missing from a row answers the default row of its kind: pages send the
# anonymous caller to log in (302), refuse integrators (403: machine accounts use the API) and answer 405 to the
# rest; the API answers 401 to callers without a token (superusers hold none: they work in the admin) and 405.
PAGE_DEFAULT = "302 405 405 403 405 405 405"
API_DEFAULT = "401 405 405 405 405 405 401"
NOT_ALLOWED = "405 405 405 405 405 405 405"
NOT_ALLOWED_API = "401 405 405 405 405 405 401"
DICOMWEB_SEARCH = {
    "get": "401 200 200 200 200 200 401",
    "post": NOT_ALLOWED_API,
    "put": NOT_ALLOWED_API,
    "patch": NOT_ALLOWED_API,
    "delete": NOT_ALLOWED_API,
}
DICOMWEB_RETRIEVE = {
    "get": "401 200 200 200 200 404 401",
    "post": NOT_ALLOWED_API,
    "put": NOT_ALLOWED_API,
    "patch": NOT_ALLOWED_API,
    "delete": NOT_ALLOWED_API,
}
EXPECTED: dict[str, dict[str, str]] = {
    # Pages
    "": {"get": "302 200 200 403 200 200 200"},
    "login/": {
        "get": "200 302 302 302 302 302 302",
        "post": "302 302 302 302 302 302 302",
        "put": "200 302 302 302 302 302 302",  # Django's LoginView treats PUT as POST: an empty, invalid form
        "patch": "405 302 302 302 302 302 302",
        "delete": "405 302 302 302 302 302 302",
    },
    "logout/": {"get": NOT_ALLOWED, "post": "302 302 302 302 302 302 302", "put": NOT_ALLOWED, "patch": NOT_ALLOWED,
                "delete": NOT_ALLOWED},
    "health/": {"get": " ".join(["200|503"] * 7), "post": NOT_ALLOWED, "put": NOT_ALLOWED, "patch": NOT_ALLOWED,
                "delete": NOT_ALLOWED},  # 503 while no worker answers the ping
    # Prometheus: no token and no allowed network here, so 404 for everyone, whatever the method (not advertised)
    "metrics": {method: " ".join(["404"] * 7) for method in METHODS},
    "favicon.ico": {"get": " ".join(["301"] * 7), "post": NOT_ALLOWED, "put": NOT_ALLOWED, "patch": NOT_ALLOWED,
                    "delete": NOT_ALLOWED},  # to the SVG icon, for everyone
    "model/": {"get": "302 200 200 403 200 200 200"},
    "patients/new/": {
        "get": "302 200 200 403 403 200 200",
        "post": "302 302 302 403 403 302 200",  # the superuser belongs to no clinic: the form says so
        "put": "302 405 405 403 403 405 405",
        "patch": "302 405 405 403 403 405 405",
        "delete": "302 405 405 403 403 405 405",
    },
    "patients/<int:patient_id>/": {"get": "302 200 200 403 200 404 200"},
    "patients/<int:patient_id>/edit/": {
        "get": "302 200 200 403 403 404 200",
        "post": "302 302 302 403 403 404 302",
        "put": "302 405 405 403 403 405 405",
        "patch": "302 405 405 403 403 405 405",
        "delete": "302 405 405 403 403 405 405",
    },
    "patients/<int:patient_id>/studies/new/": {
        "get": "302 200 200 403 403 404 200",
        "post": "302 302 302 403 403 404 302",
        "put": "302 405 405 403 403 405 405",
        "patch": "302 405 405 403 403 405 405",
        "delete": "302 405 405 403 403 405 405",
    },
    "studies/<int:study_id>/": {"get": "302 200 200 403 200 404 200"},
    "studies/<int:study_id>/edit/": {
        "get": "302 200 200 403 403 404 200",
        "post": "302 302 302 403 403 404 302",
        "put": "302 405 405 403 403 405 405",
        "patch": "302 405 405 403 403 405 405",
        "delete": "302 405 405 403 403 405 405",
    },
    # Sign-off and reopening: clinicians only (the records' study is open: reopening it is refused, a flash message)
    "studies/<int:study_id>/sign-off/": {"get": "302 403 200 403 403 404 200", "post": "302 403 302 403 403 404 302"},
    "studies/<int:study_id>/reopen/": {"post": "302 403 302 403 403 404 302"},
    "studies/<int:study_id>/upload/": {"post": "302 302 302 403 403 404 302"},
    "studies/<int:study_id>/images/": {"get": "302 200 200 403 200 404 200"},
    "studies/<int:study_id>/report.pdf": {"get": "302 200 200 403 200 404 200"},  # the records' study is signed
    "images/<int:image_id>/file/": {"get": "302 200 200 403 200 404 200"},
    "images/<int:image_id>/original/": {"get": "302 200 200 403 200 404 200"},
    "images/<int:image_id>/preview/": {"get": "302 200 200 403 200 404 200"},
    "images/<int:image_id>/thumbnail/": {"get": "302 200 200 403 200 404 200"},
    "images/<int:image_id>/playback/": {"get": "302 200 200 403 200 404 200"},  # a cine loop's video (ranges)
    "images/<int:image_id>/heatmap/": {"get": "302 200 200 403 200 404 200"},
    "images/<int:image_id>/history/": {"get": "302 200 200 403 200 404 200"},
    "images/<int:image_id>/review/": {"post": "302 403 302 403 403 404 302"},
    "images/<int:image_id>/exclude/": {"post": "302 403 302 403 403 404 302"},
    "images/<int:image_id>/include/": {"post": "302 403 302 403 403 404 302"},
    "images/<int:image_id>/retry/": {"post": "302 302 302 403 403 404 302"},
    # The head measurement on the study page (issue 21): calibrating is for whoever adds images, reviewing for
    # clinicians (biometry.review_measurement).
    "images/<int:image_id>/calibrate/": {"post": "302 302 302 403 403 404 302"},
    "measurements/<int:measurement_id>/review/": {"post": "302 403 302 403 403 404 302"},
    "measurements/<int:measurement_id>/history/": {"get": "302 200 200 403 200 404 200"},
    # The API's description, public like its documentation
    # DICOMweb (docs/dicom.md): token or session, like the API; the roles that upload may store; searches of another
    # clinic are empty (200 []), its instance a 404 like an unknown one. POST /studies/{uid} stores into that study.
    "dicomweb/studies": {"get": "401 200 200 200 200 200 401", "post": "401 200 200 200 403 200 401",
                         "put": NOT_ALLOWED_API, "patch": NOT_ALLOWED_API, "delete": NOT_ALLOWED_API},
    "dicomweb/studies/<str:study_uid>": {"get": DICOMWEB_RETRIEVE["get"], "post": "401 200 200 200 403 200 401",
                                         "put": NOT_ALLOWED_API, "patch": NOT_ALLOWED_API, "delete": NOT_ALLOWED_API},
    "dicomweb/studies/<str:study_uid>/metadata": DICOMWEB_RETRIEVE,
    "dicomweb/studies/<str:study_uid>/series/<str:series_uid>": DICOMWEB_RETRIEVE,
    "dicomweb/studies/<str:study_uid>/series/<str:series_uid>/metadata": DICOMWEB_RETRIEVE,
    "dicomweb/studies/<str:study_uid>/series/<str:series_uid>/instances/<str:instance_uid>/metadata": DICOMWEB_RETRIEVE,
    "dicomweb/studies/<str:study_uid>/series/<str:series_uid>/instances/<str:instance_uid>/frames/<str:frames>": (
        DICOMWEB_RETRIEVE
    ),
    "dicomweb/studies/<str:study_uid>/series": DICOMWEB_SEARCH,
    "dicomweb/studies/<str:study_uid>/instances": DICOMWEB_SEARCH,
    "dicomweb/studies/<str:study_uid>/series/<str:series_uid>/instances": DICOMWEB_SEARCH,
    "dicomweb/studies/<str:study_uid>/series/<str:series_uid>/instances/<str:instance_uid>/rendered": DICOMWEB_RETRIEVE,
    "dicomweb/studies/<str:study_uid>/series/<str:series_uid>/instances/<str:instance_uid>/frames/<str:frames>/"
    "rendered": DICOMWEB_RETRIEVE,
    "dicomweb/studies/<str:study_uid>/series/<str:series_uid>/instances/<str:instance_uid>": {
        "get": "401 200 200 200 200 404 401", "post": NOT_ALLOWED_API, "put": NOT_ALLOWED_API,
        "patch": NOT_ALLOWED_API, "delete": NOT_ALLOWED_API,
    },
    "api/schema/": {"get": "200 200 200 200 200 200 200", "post": NOT_ALLOWED, "put": NOT_ALLOWED,
                    "patch": NOT_ALLOWED, "delete": NOT_ALLOWED},
    "api/docs/": {"get": "200 200 200 200 200 200 200", "post": NOT_ALLOWED, "put": NOT_ALLOWED,
                  "patch": NOT_ALLOWED, "delete": NOT_ALLOWED},
    # The API (the test settings let every role hold a token; the default lets only integrators)
    "api/v1/auth/token/": {"post": "200 200 200 200 200 200 200", "delete": "401 204 204 204 204 204 401"},
    "api/v1/auth/token/rotate/": {"post": "401 200 200 200 200 200 401"},
    "api/v1/patients/": {"get": "401 200 200 200 200 200 401", "post": "401 201 201 201 403 201 401"},
    "api/v1/patients/<int:patient_id>/": {"get": "401 200 200 200 200 404 401", "patch": "401 200 200 200 403 404 401"},
    # PUT registers unless registered: North's patient again is a 200; another clinic has no such MRN (201).
    "api/v1/patients/by-mrn/<path:mrn>/": {"get": "401 200 200 200 200 404 401", "put": "401 200 200 200 403 201 401"},
    "api/v1/studies/": {"get": "401 200 200 200 200 200 401", "post": "401 201 201 201 403 404 401"},
    "api/v1/studies/<int:study_id>/": {"get": "401 200 200 200 200 404 401", "patch": "401 200 200 200 403 404 401"},
    # Sign-off (and complete/, its deprecated name) and reopening: clinicians only; the records' study is open, so
    # reopening it is a 409 study_not_signed.
    "api/v1/studies/<int:study_id>/complete/": {"post": "401 403 200 403 403 404 401"},
    "api/v1/studies/<int:study_id>/sign-off/": {"post": "401 403 200 403 403 404 401"},
    "api/v1/studies/<int:study_id>/reopen/": {"post": "401 403 409 403 403 404 401"},
    "api/v1/studies/<int:study_id>/images/": {"post": "401 202 202 202 403 404 401"},
    "api/v1/studies/<int:study_id>/report/": {"get": "401 200 200 200 200 404 401"},
    "api/v1/images/": {"get": "401 200 200 200 200 200 401"},
    "api/v1/images/<int:image_id>/": {"get": "401 200 200 200 200 404 401"},
    "api/v1/images/<int:image_id>/file/": {"get": "401 200 200 200 200 404 401"},
    "api/v1/images/<int:image_id>/original/": {"get": "401 200 200 200 200 404 401"},
    "api/v1/images/<int:image_id>/heatmap/": {"get": "401 200 200 200 200 404 401"},  # made already: 200
    # A clip just uploaded: its video plays; its per-frame analysis is not there yet (409), for every role that
    # may read it.
    "api/v1/images/<int:image_id>/frames/": {"get": "401 409 409 409 409 404 401"},
    "api/v1/images/<int:image_id>/playback/": {"get": "401 200 200 200 200 404 401"},
    "api/v1/images/<int:image_id>/history/": {"get": "401 200 200 200 200 404 401"},
    "api/v1/images/<int:image_id>/review/": {"post": "401 403 200 403 403 404 401"},
    # Excluding an image and including it again: clinicians only, as reviews (including an included image: 200).
    "api/v1/images/<int:image_id>/exclude/": {"post": "401 403 200 403 403 404 401"},
    "api/v1/images/<int:image_id>/include/": {"post": "401 403 200 403 403 404 401"},
    # A known distance drawn on the image: sonographers and clinicians (not an integration, nor a clinic admin)
    "api/v1/images/<int:image_id>/calibration/": {"post": "401 200 200 403 403 404 401"},
    "api/v1/jobs/": {"get": "401 200 200 200 200 200 401"},
    "api/v1/jobs/<int:job_id>/": {"get": "401 200 200 200 200 404 401"},
    "api/v1/jobs/<int:job_id>/retry/": {"post": "401 202 202 202 403 404 401"},
    "api/v1/predictions/": {"get": "401 200 200 200 200 200 401"},
    "api/v1/predictions/<int:prediction_id>/": {"get": "401 200 200 200 200 404 401"},
    "api/v1/model-versions/": {"get": "401 200 200 200 200 200 401"},
    "api/v1/model-versions/<str:model_version>/": {"get": "401 200 200 200 200 200 401"},
    # Head measurements (issue 21): every role that reads images reads them; clinicians review them.
    "api/v1/measurements/<int:measurement_id>/": {"get": "401 200 200 200 200 404 401"},
    "api/v1/measurements/<int:measurement_id>/review/": {"post": "401 403 200 403 403 404 401"},
}  # fmt: skip


def _status_row(row: str) -> tuple[frozenset[int], ...]:
    """'200 403 200|503 ...': each role's status, or the statuses one of which it may answer."""
    statuses = tuple(frozenset(int(value) for value in cell.split("|")) for cell in row.split())
    assert len(statuses) == len(ROLES), row
    return statuses


def _matches(statuses: list[int], expected: tuple[frozenset[int], ...]) -> bool:
    return all(status in allowed for status, allowed in zip(statuses, expected, strict=True))


def _prediction(study, user) -> ClassificationJob:
    image = upload(study, seed=next(_unique), user=user)
    return classify(image, heatmap_png=png_bytes(seed=99)).job


@pytest.fixture
def no_last_login_updates():
    """Logging in stamps last_login (and a history row); here that is not the write being looked for."""
    user_logged_in.disconnect(update_last_login, dispatch_uid="update_last_login")
    yield
    user_logged_in.connect(update_last_login, dispatch_uid="update_last_login")


@pytest.fixture
def people(north, south, no_last_login_updates):
    return {
        "anonymous": None,
        "sonographer": UserFactory(username="sono_north", clinic=north, role=Role.SONOGRAPHER),
        "clinician": UserFactory(username="clin_north", clinic=north, role=Role.CLINICIAN),
        "integrator": UserFactory(username="api_north", clinic=north, role=Role.INTEGRATOR),
        "clinic_admin": UserFactory(username="admin_north", clinic=north, is_staff=True, role=Role.CLINIC_ADMIN),
        "other_clinic": UserFactory(username="sono_south", clinic=south, role=Role.SONOGRAPHER),
        "superuser": UserFactory(username="root", clinic=None, is_superuser=True, is_staff=True, role=None),
    }


def _records(people, route: str = "") -> dict:
    """Fresh North records for one request: a study with a classified image, and a failed job to retry
    (and, for DICOMweb routes, a DICOM instance stored as a sonographer's would be)."""
    sonographer = people["sonographer"]
    if not ModelVersion.objects.filter(is_active=True).exists():
        ModelVersion.objects.create(
            name="tiny", version="1", file_path="t.keras", sha256="0" * 64, input_size=32, review_threshold=0.5,
            class_labels=PLANE_LABELS, is_active=True,
        )  # fmt: skip
    study = StudyFactory(patient__clinic=sonographer.clinic, created_by=sonographer)
    job = _prediction(study, sonographer)
    failed = image_upload(study=study, data=png_bytes(seed=next(_unique)), filename="f.png", uploaded_by=sonographer)
    ClassificationJob.objects.filter(image=failed.image).update(status=ClassificationJob.Status.FAILED)
    dicom_uids = _dicom_instance(sonographer) if route.startswith("dicomweb/") else {}
    clip = route.endswith(("/frames/", "/playback/"))  # routes of a cine loop: the image is a clip
    measured = "<int:measurement_id>" in route  # the records' brain image measured, as the worker saves it
    if route.endswith(("/report.pdf", "/report/")):  # a study's report exists once a clinician signed it off
        signer = people.get("clinician") or UserFactory(clinic=sonographer.clinic, role=Role.CLINICIAN)
        study_sign_off(study=study, signed_by=signer, acknowledged=True)
    return {
        **dicom_uids,
        "patient_id": study.patient_id,
        "study_id": study.id,
        "image_id": _clip(study, sonographer).id if clip else job.image_id,
        "job_id": ClassificationJob.objects.get(image=failed.image).id,
        "prediction_id": job.prediction.id,
        **({"measurement_id": _measurement(job.image)} if measured else {}),
        "model_version": "tiny:1",
        "mrn": study.patient.mrn,
        "patient_details": {
            "given_name": study.patient.given_name,
            "family_name": study.patient.family_name,
            "birth_date": study.patient.birth_date.isoformat(),
        },
    }


def _measurement(image) -> int:
    from biometry.models import MeasurementJob
    from biometry.services import measurement_job_start, measurement_request, measurement_save
    from tests.biometry.conftest import card_without_model, drawn_head

    with override_settings(BIOMETRY_MODEL_CARD=card_without_model(tempfile.mkdtemp())):
        job = MeasurementJob.objects.filter(image=image).first() or measurement_request(image=image)
    measurement_job_start(job_id=job.id)
    return measurement_save(job_id=job.id, finding=drawn_head(), runtime="keras").measurement.id


def _clip(study, user):
    return image_upload(study=study, data=make_mp4(frames=4), filename="sweep.mp4", uploaded_by=user).image


def _dicom_instance(user) -> dict:
    mrn = f"MRN-WEB-{next(_unique)}"
    data = dicom_bytes(patient_id=mrn)
    dicom = dicom_instance_receive(clinic=user.clinic, data=data, received_by=user, source="test").image.dicom
    uids = ("study_instance_uid", "series_instance_uid", "sop_instance_uid")
    found = dict(zip(("study_uid", "series_uid", "instance_uid"), (getattr(dicom, uid) for uid in uids), strict=True))
    return {**found, "dicom_mrn": mrn, "frames": "1"}


def _stow_body(records: dict) -> bytes:
    """A STOW-RS body: a new instance (a fresh SOP Instance UID each time) of the records' DICOM study."""
    data = dicom_bytes(patient_id=records["dicom_mrn"], study_uid=records["study_uid"])
    return b"--B\r\nContent-Type: application/dicom\r\n\r\n" + data + b"\r\n--B--\r\n"


# Routes whose body is always the same: by their ending ("/review/"), or the whole route for a POST.
_FIXED_BODIES = {
    "/sign-off/": {"acknowledged": True},  # the records' study has an image awaiting review
    "/complete/": {"acknowledged": True},
    "/reopen/": {"reason": "A late image"},
    "measurements/<int:measurement_id>/review/": {"review_action": "accept"},  # the page's (before "/review/")
    "api/v1/measurements/<int:measurement_id>/review/": {"action": "accept"},  # the API's (before "/review/")
    "/review/": {"label": PLANE_LABELS[1], "comment": ""},
    "/calibrate/": {"start_x": 1, "start_y": 1, "end_x": 41, "end_y": 1, "distance_mm": 6},
    "/exclude/": {"reason": "test_image", "comment": ""},
    "/calibration/": {"start": [2, 10], "end": [42, 10], "distance_mm": 10},
    "login/": {"username": "sono_north", "password": "correct-horse-battery"},
    "api/v1/auth/token/": {"username": "sono_north", "password": "correct-horse-battery"},
}


def _body(route: str, method: str, records: dict) -> dict:
    """A body an allowed role's request would succeed with."""
    n = next(_unique)
    for key, body in _FIXED_BODIES.items():  # "/x/": a route ending so; else the route itself, for a POST
        if route.endswith(key) if key.startswith("/") else (route == key and method == "post"):
            return dict(body)
    if route in ("api/v1/patients/", "patients/new/"):
        return {"mrn": f"M-{n}", "given_name": "Ana", "family_name": f"Lima{n}"}
    if route == "studies/<int:study_id>/edit/":
        return {"exam_date": "2026-01-20", "gestational_age_weeks": "20", "gestational_age_days": "3", "notes": "n"}
    if route.endswith("/edit/") or (route == "api/v1/patients/<int:patient_id>/" and method != "delete"):
        return {"mrn": f"E-{n}", "given_name": "Ana", "family_name": "Edited"}
    if route == "api/v1/patients/by-mrn/<path:mrn>/" and method == "put":
        return records["patient_details"]
    if route in ("api/v1/studies/",):
        return {"patient": records["patient_id"], "exam_date": "2026-01-20"}
    if route.endswith("studies/new/"):
        return {"exam_date": "2026-01-20"}
    if route.endswith(("/upload/", "/images/")):
        return {"file": SimpleUploadedFile(f"u{n}.png", png_bytes(seed=1000 + n), content_type="image/png")}
    return {}


def _call(client, route: str, method: str, role: str, people, records):
    user = people[role]
    url = fill_route(route, records).replace("<str:model_version>", records["model_version"])
    url = url.replace("<path:mrn>", quote(records["mrn"], safe=""))
    for name in ("study_uid", "series_uid", "instance_uid", "frames"):
        url = url.replace(f"<str:{name}>", records.get(name, ""))
    headers = {}
    client.logout()
    if user is not None and route.startswith(("api/", "dicomweb/")):
        token = Token.objects.filter(user=user).first()
        if token is not None:
            headers["HTTP_AUTHORIZATION"] = f"Token {token.key}"
    elif user is not None:
        client.force_login(user)
    body = _body(route, method, records)
    if method == "get":
        return client.get(url, **headers)
    if route.startswith("dicomweb/") and method == "post":
        content_type = 'multipart/related; type="application/dicom"; boundary=B'
        return client.generic("POST", url, _stow_body(records), content_type=content_type, **headers)
    uploads = any(isinstance(value, SimpleUploadedFile) for value in body.values())
    if method == "post" and (uploads or not route.startswith("api/")):
        return client.post(url, body, **headers)  # multipart, as a browser's form or an upload sends it
    if uploads:
        body = {}  # PUT, PATCH or DELETE of an upload route: the method is what is refused
    return getattr(client, method)(url, json.dumps(body), content_type="application/json", **headers)


def _routes() -> list[str]:
    return sorted(
        route
        for route, pattern in all_routes()
        if not route.startswith(SKIPPED_PREFIXES) and "[" not in route and "^" not in route
    )


def _expected(route: str, method: str) -> tuple[frozenset[int], ...]:
    row = EXPECTED.get(route, {}).get(method)
    if row is None:
        row = API_DEFAULT if route.startswith("api/v1/") else PAGE_DEFAULT
    return _status_row(row)


def test_every_route_has_a_row():
    missing = [route for route in _routes() if route not in EXPECTED]
    assert not missing, f"add rows to EXPECTED for {missing}"


@pytest.mark.parametrize("route", _routes())
def test_each_role_gets_the_expected_status_and_refused_writes_change_nothing(client, people, route, settings):
    settings.API_THROTTLE_RATES = {"user": "100000/minute", "anon": "100000/minute", "login": "100000/minute"}
    records = _records(people, route)
    for user in people.values():
        if user is not None and not user.is_superuser:  # superusers hold no token: they work in the admin
            Token.objects.get_or_create(user=user)
    before = database_snapshot()
    observed, problems = {}, []
    for method in METHODS:
        statuses = []
        for role in ROLES:
            # Every request starts from the same records: what one request wrote is rolled back before the next.
            savepoint = transaction.savepoint()
            response = _call(client, route, method, role, people, records)
            statuses.append(response.status_code)
            # 401 and 405 answer before any view code runs; every other refused write is checked.
            refused = response.status_code >= 400 and response.status_code not in (401, 405)
            if method != "get" and refused and database_snapshot() != before:
                problems.append(f"{method.upper()} {route} as {role}: refused ({response.status_code}) yet wrote")
            transaction.savepoint_rollback(savepoint)
        observed[method] = " ".join(str(status) for status in statuses)
        if not _matches(statuses, _expected(route, method)):
            wanted = EXPECTED.get(route, {}).get(method, "the default row")
            problems.append(f"{method.upper()} {route}: expected {wanted}, got {observed[method]}")
    if os.environ.get("MATRIX_PRINT"):
        with open(os.environ["MATRIX_PRINT"], "a") as out:
            out.write(f"    {route!r}: {observed!r},\n")
    assert not problems, "\n".join(problems)
