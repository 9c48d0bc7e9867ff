"""The committed docs/openapi.yaml is the schema the code generates, and it is valid.

Regenerate with: python manage.py spectacular --file docs/openapi.yaml --validate --fail-on-warn"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from rest_framework.test import APIClient

COMMITTED = Path(settings.BASE_DIR) / "docs" / "openapi.yaml"
REGENERATE = "python manage.py spectacular --file docs/openapi.yaml --validate --fail-on-warn"


def test_committed_schema_is_current_and_valid(tmp_path):
    generated = tmp_path / "openapi.yaml"

    call_command("spectacular", "--file", str(generated), "--validate", "--fail-on-warn")

    assert COMMITTED.read_text() == generated.read_text(), f"docs/openapi.yaml is stale; run: {REGENERATE}"


def test_every_api_route_is_in_the_schema_with_documented_errors(db):
    import yaml

    schema = yaml.safe_load(COMMITTED.read_text())
    operations = [
        (path, method, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in {"get", "post", "patch", "put", "delete"}
    ]

    # 25 + images original (issue 17) + patients by-mrn GET and PUT (issue 17) + images frames and playback (issue 18)
    # + images exclude and include, studies sign-off, reopen and report (issue 19) + images heatmap (issue 20)
    # + measurements GET and review, images calibration (issue 21)
    assert len(operations) == 39
    for path, method, operation in operations:
        assert operation.get("summary"), f"{method} {path} has no summary"
        errors = {code for code in operation["responses"] if code.startswith(("4", "5"))}
        assert "401" in errors and "429" in errors, f"{method} {path} lacks documented errors"
        for code in errors:
            assert operation["responses"][code]["content"]["application/json"]["examples"], (method, path, code)


def test_schema_and_swagger_ui_are_served(db):
    client = APIClient()

    schema = client.get("/api/schema/")
    docs = client.get("/api/docs/")

    assert schema.status_code == 200
    assert b"/api/v1/images/{image_id}/history/" in schema.content
    assert docs.status_code == 200


def _operations(schema: dict):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in {"get", "post", "patch", "put", "delete"}:
                yield f"{method} {path}", operation


def test_the_response_headers_a_client_acts_on_are_documented():
    import yaml

    schema = yaml.safe_load(COMMITTED.read_text())
    documented = set()

    for name, operation in _operations(schema):
        takes_key = any(p["in"] == "header" and p["name"] == "Idempotency-Key" for p in operation.get("parameters", []))
        for status, response in operation["responses"].items():
            headers = set(response.get("headers", {}))
            documented |= headers
            if status == "429":
                assert "Retry-After" in headers, name
            if status.startswith("2") and takes_key:
                assert "Idempotent-Replayed" in headers, (name, status)
            if status == "201":
                assert "Location" in headers, name
            if status.startswith("2") and set(response.get("content", {})) - {"application/json"}:
                assert "Content-Disposition" in headers, (name, status)

    assert documented == {"Retry-After", "Idempotent-Replayed", "Location", "Content-Disposition"}
    assert schema["components"]["headers"]["Retry-After"]["schema"]["type"] == "integer"


def test_every_request_body_has_one_media_type():
    """A generated client sends the last body type it is offered: JSON everywhere, multipart for files."""
    import yaml

    schema = yaml.safe_load(COMMITTED.read_text())

    bodies = {name: list(op["requestBody"]["content"]) for name, op in _operations(schema) if "requestBody" in op}

    assert bodies.pop("post /api/v1/studies/{study_id}/images/") == ["multipart/form-data"]
    assert bodies and all(media_types == ["application/json"] for media_types in bodies.values()), bodies


def test_no_operation_is_described_by_the_base_views_docstring():
    """A view without a docstring of its own must not borrow ApiView's (which speaks to developers)."""
    import yaml

    from fetalsite.core.api_views import ApiView

    schema = yaml.safe_load(COMMITTED.read_text())
    base_doc = ApiView.__doc__.split("\n")[0]

    borrowed = [name for name, op in _operations(schema) if base_doc in op.get("description", "")]

    assert borrowed == []
