"""Schemathesis against the live schema (generated from the running code, as /api/schema/ serves
it), authenticated as North's integrator: no 5xx, and every response conforms to the schema
(status, content type, headers, body).

Two runs, both bounded for CI: every operation on its own (the coverage phase's boundary and
wrong-type values, then a few random examples each), and stateful sequences that follow links
from one response to the next request (create a patient, then open, change and list it; list
studies, then upload to one). drf-spectacular writes no OpenAPI links; Schemathesis infers them
from the schema (a response's `id` to a path's `patient_id`, `study_id`, ...), and the test
checks that it found some for every kind of record."""

from __future__ import annotations

import json
import os
import re
import zlib

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="pinned in requirements-dev.txt: schemathesis==4.32.5")

from django.core.signals import request_finished, request_started  # noqa: E402 (after the importorskip)
from django.db import close_old_connections, transaction  # noqa: E402 (after the importorskip)
from drf_spectacular.generators import SchemaGenerator  # noqa: E402 (after the importorskip)
from drf_spectacular.renderers import OpenApiJsonRenderer  # noqa: E402 (after the importorskip)
from hypothesis import HealthCheck, Phase  # noqa: E402 (after the importorskip)
from hypothesis import settings as hypothesis_settings  # noqa: E402 (after the importorskip)
from rest_framework.authtoken.models import Token  # noqa: E402 (after the importorskip)

from fetalsite.wsgi import application  # noqa: E402 (after the importorskip)
from tests.api.conftest import classify, upload  # noqa: E402 (after the importorskip)
from tests.biometry.conftest import card_without_model, measured  # noqa: E402 (after the importorskip)
from tests.urlconf import all_routes  # noqa: E402 (after the importorskip)

# Bounded for CI; raise it (and set SCHEMATHESIS_RANDOM=1 for new examples each run) to dig deeper.
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "15"))
# Stateful: this many sequences of at most STATEFUL_STEPS calls each.
STATEFUL_MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_STATEFUL_MAX_EXAMPLES", "25"))
STATEFUL_STEPS = int(os.environ.get("SCHEMATHESIS_STATEFUL_STEPS", "8"))
DERANDOMIZE = not os.environ.get("SCHEMATHESIS_RANDOM")


def _live_schema() -> dict:
    generated = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(generated))


# Schemathesis infers most links from names (a list's `results/*/id` to `{patient_id}`); these two it
# cannot: a new study's `patient` comes from a patient, and a model version's path key is its `key`.
EXTRA_LINKS = {
    ("patients_create", "201"): {
        "StudyOfNewPatient": {"operationId": "studies_create", "requestBody": {"patient": "$response.body#/id"}}
    },
    ("patients_list", "200"): {
        "StudyOfListedPatient": {
            "operationId": "studies_create",
            "requestBody": {"patient": "$response.body#/results/0/id"},
        }
    },
    ("model_versions_list", "200"): {
        "ListedModelVersion": {
            "operationId": "model_versions_retrieve",
            "parameters": {"model_version": "$response.body#/results/0/key"},
        }
    },
}


def _with_extra_links(raw: dict) -> dict:
    for path_item in raw["paths"].values():
        for operation in path_item.values():
            for (operation_id, status), links in EXTRA_LINKS.items():
                if operation.get("operationId") == operation_id:
                    operation["responses"][status].setdefault("links", {}).update(links)
    return raw


schema = schemathesis.openapi.from_dict(_with_extra_links(_live_schema()))
schema.app = application  # calls go through Django in-process, inside the test's transaction

CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
]


@pytest.fixture
def keep_connection():
    """Like Django's test client: the end of a WSGI request must not close the test's connection."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def north_records(keep_connection, integrator, study, model_version, settings, tmp_path):
    """Some of North's data, so that lists, filters and half of the path ids hit real rows."""
    settings.API_THROTTLE_RATES = {"user": "100000/minute", "anon": "100000/minute", "login": "100000/minute"}
    settings.BIOMETRY_MODEL_CARD = card_without_model(tmp_path)  # the brain plane's measurement job is queued
    image = upload(study, seed=1)
    prediction = classify(image)
    measurement = measured(image)
    upload(study, seed=2)
    ids = {
        "patient_id": study.patient_id,
        "study_id": study.id,
        "image_id": image.id,
        "job_id": prediction.job_id,
        "prediction_id": prediction.id,
        "measurement_id": measurement.id,
        "model_version": "fetalnet:1.0",
    }
    return integrator, ids


def _aim_at_real_records(case, ids: dict) -> None:
    """Random ids almost always miss; point about half of the generated path ids at North's real
    records (chosen from the generated value, so Hypothesis can replay and shrink the example)."""
    for name, value in (case.path_parameters or {}).items():
        if name in ids and zlib.crc32(repr(value).encode()) % 2 == 0:
            case.path_parameters[name] = ids[name]


def _auth_headers(user) -> dict:
    # Looked up per call: the fuzzer may rotate or revoke the token along the way.
    token, _ = Token.objects.get_or_create(user=user)
    return {"Authorization": f"Token {token.key}"}


@schema.parametrize()
@hypothesis_settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=DERANDOMIZE,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
@pytest.mark.django_db
def test_api_conforms_to_its_schema(case, north_records):
    integrator, ids = north_records
    _aim_at_real_records(case, ids)
    case.call_and_validate(headers=_auth_headers(integrator), checks=CHECKS)


STATEFUL_CHECKS = [
    *CHECKS,
    # A record the API just created can be read back; a deleted one is gone.
    schemathesis.checks.ensure_resource_availability,
    schemathesis.checks.use_after_free,
]


@pytest.mark.django_db
def test_api_workflows_conform_to_the_schema(north_records):
    integrator, _ = north_records

    class ApiWorkflow(schema.as_state_machine()):
        def setup(self):
            # Each sequence starts from the same records (Hypothesis replays and shrinks them): a
            # savepoint per sequence, rolled back at its end.
            self.savepoint = transaction.atomic()
            self.savepoint.__enter__()

        def teardown(self):
            transaction.set_rollback(True)
            self.savepoint.__exit__(None, None, None)

        def get_call_kwargs(self, case):
            return {"headers": _auth_headers(integrator)}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=STATEFUL_CHECKS, transport_kwargs=kwargs, recorder=self.recorder)

    ApiWorkflow.run(
        settings=hypothesis_settings(
            max_examples=STATEFUL_MAX_EXAMPLES,
            stateful_step_count=STATEFUL_STEPS,
            deadline=None,
            derandomize=DERANDOMIZE,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
    )


def test_links_are_inferred_for_every_kind_of_record():
    """Without links the stateful run would only repeat the single-operation one."""
    transitions = schema.as_state_machine()._transitions.operations
    linked_to = {label for label, entry in transitions.items() if entry.incoming}

    for target in (
        "GET /api/v1/patients/{patient_id}/",
        "GET /api/v1/studies/{study_id}/",
        "POST /api/v1/studies/{study_id}/images/",
        "GET /api/v1/images/{image_id}/",
        "GET /api/v1/jobs/{job_id}/",
        "GET /api/v1/predictions/{prediction_id}/",
    ):
        assert target in linked_to, f"no link leads to {target}"


def _api_operations_in_the_urlconf() -> set[str]:
    """Every view under /api/v1/ as "METHOD /path/{name}/", read from the URLconf."""
    operations = set()
    for route, pattern in all_routes():
        view_class = getattr(pattern.callback, "cls", None)
        if not route.startswith("api/v1/") or view_class is None:
            continue
        path = "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
        for method in ("get", "post", "put", "patch", "delete"):
            if hasattr(view_class, method):
                operations.add(f"{method.upper()} {path}")
    return operations


def test_every_api_operation_is_fuzzed():
    """Every route and method under /api/v1/ is in the schema, so the tests above exercise it."""
    fuzzed = {result.ok().label for result in schema.get_all_operations()}

    assert _api_operations_in_the_urlconf() == fuzzed
