"""The response headers an integrator acts on, documented on every operation that sends them.

A drf-spectacular post-processing hook, so that each rule holds for every operation (new ones included)
instead of being repeated on each view: 429 and a "not ready yet" 202 → ``Retry-After``; the 2xx answers of an
operation that takes an ``Idempotency-Key`` → ``Idempotent-Replayed``; 201 → ``Location``; a file download →
``Content-Disposition``.
tests/api/test_openapi.py checks the schema says so, and the API tests that the responses do."""

from __future__ import annotations

from fetalsite.core.api_utils import IDEMPOTENCY_HEADER, REPLAYED_HEADER

HTTP_METHODS = {"get", "put", "post", "patch", "delete", "head", "options", "trace"}

HEADERS = {
    "Retry-After": {
        "description": "Seconds to wait before sending the request again.",
        "schema": {"type": "integer", "minimum": 0},
    },
    REPLAYED_HEADER: {
        "description": f"`true` when this is the stored answer to an earlier request with the same "
        f"`{IDEMPOTENCY_HEADER}`, sent again and nothing changed; absent on the first answer.",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "Location": {
        "description": "The new record's URL in this API (a path on this server), also on a replayed answer.",
        "schema": {"type": "string", "format": "uri-reference"},
    },
    "Content-Disposition": {
        "description": 'Always an attachment with the file name to save it under: `attachment; filename="..."`.',
        "schema": {"type": "string"},
    },
}


def _takes_idempotency_key(operation: dict) -> bool:
    return any(
        parameter.get("in") == "header" and parameter.get("name") == IDEMPOTENCY_HEADER
        for parameter in operation.get("parameters", [])
    )


def _is_download(response: dict) -> bool:
    """Bytes rather than JSON: every media type but application/json is a file."""
    return any(media_type != "application/json" for media_type in response.get("content", {}))


# Operations whose 202 means "not ready yet, ask again": an upload's 202 (queued) sends no Retry-After.
ASK_AGAIN_ON_202 = {"images_heatmap_retrieve"}


def _headers_for(status: str, response: dict, *, idempotent: bool, ask_again: bool = False) -> list[str]:
    names = []
    if status == "429" or (status == "202" and ask_again):
        names.append("Retry-After")
    if status.startswith("2") and idempotent:
        names.append(REPLAYED_HEADER)
    if status == "201":
        names.append("Location")
    if status.startswith("2") and _is_download(response):
        names.append("Content-Disposition")
    return names


def response_headers_postprocess(result: dict, generator, request, public) -> dict:
    """Add the headers above, as references to ``components.headers``; a header an operation already
    describes itself (with wording of its own) is left as it is."""
    used = set()
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in HTTP_METHODS:
                continue
            idempotent = _takes_idempotency_key(operation)
            for status, response in operation.get("responses", {}).items():
                ask_again = operation.get("operationId") in ASK_AGAIN_ON_202
                for name in _headers_for(status, response, idempotent=idempotent, ask_again=ask_again):
                    response.setdefault("headers", {}).setdefault(name, {"$ref": f"#/components/headers/{name}"})
                    used.add(name)
    if used:
        components = result.setdefault("components", {})
        components["headers"] = {**components.get("headers", {}), **{name: HEADERS[name] for name in sorted(used)}}
    return result
