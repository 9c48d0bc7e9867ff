"""The schema's examples are real answers of this code, never written by hand.

``tests/api/test_api_examples.py`` runs a scenario of requests against every API operation and records what
each answered in ``docs/api-examples.json``, keyed by operation id, status and example name::

    {"patients_create": {"409": {"MRN already registered": {"method": "POST", "path": "/api/v1/patients/",
                                                            "request": {...}, "response": {...}}}}}

The test fails when the file differs from what the scenario records (``UPDATE_API_EXAMPLES=1`` rewrites
it), and the schema class (``api_schema.ApiAutoSchema``) hands every operation to ``attach_recorded_examples``:
each JSON response gets the examples recorded for its status and no others, and a JSON request body the
bodies of the requests that succeeded."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

from django.conf import settings

JSON = "application/json"


def examples_file() -> Path:
    return Path(settings.BASE_DIR) / "docs" / "api-examples.json"


@functools.lru_cache(maxsize=4)
def _load(path: Path, modified_ns: int) -> dict[str, Any]:
    return json.loads(path.read_text())


def recorded_examples() -> dict[str, Any]:
    """The committed recordings (read again when the file changes: the test rewrites it mid-session)."""
    path = examples_file()
    if not path.exists():
        return {}
    return _load(path, path.stat().st_mtime_ns)


def _key(name: str) -> str:
    # An example's key in the schema: its name in CamelCase, as drf-spectacular keys examples.
    return "".join(word[:1].upper() + word[1:] for word in re.split(r"[^A-Za-z0-9]+", name) if word)


def _example(name: str, recording: dict[str, Any], part: str) -> dict[str, Any]:
    return {
        "summary": name,
        "description": f"`{recording['method']} {recording['path']}`",
        "value": recording[part],
    }


def attach_recorded_examples(operation: dict[str, Any]) -> dict[str, Any]:
    """Replace the examples of ``operation`` (an OpenAPI operation object) with the recorded ones."""
    if "operationId" not in operation:
        return operation  # not an API path's operation (a webhook's event keeps its own example)
    recorded = recorded_examples().get(operation["operationId"], {})
    for status, response in operation.get("responses", {}).items():
        content = response.get("content", {}).get(JSON)
        if content is None:
            continue  # downloads: bytes, no example
        examples = {_key(name): _example(name, rec, "response") for name, rec in recorded.get(status, {}).items()}
        content.pop("examples", None)
        if examples:
            content["examples"] = examples
    body = operation.get("requestBody", {}).get("content", {}).get(JSON)
    if body is not None:
        requests = {
            _key(name): _example(name, rec, "request")
            for status, recordings in recorded.items()
            if status.startswith("2")
            for name, rec in recordings.items()
            if rec.get("request") is not None
        }
        body.pop("examples", None)
        if requests:
            body["examples"] = requests
    return operation
