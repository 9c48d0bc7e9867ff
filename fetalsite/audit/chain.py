"""The hash chain: one canonical form of an entry, hashed together with the previous entry's hash.

The append (services) and the verification (selectors) both call ``entry_hash_compute``, so there is
exactly one definition of what an entry's hash covers.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

# The prev_hash of the first entry.
GENESIS_HASH = "0" * 64

# Every recorded field except the hashes themselves (and the database id, which is assigned on insert).
HASHED_FIELDS = (
    "created_at",
    "user_id",
    "username",
    "clinic_id",
    "action",
    "object_type",
    "object_id",
    "patient_id",
    "path",
    "method",
    "status_code",
    "ip",
    "request_id",
)
# Fields added after entries were first written, as nullable columns. Each is hashed only when it is not
# null, so every entry written before it existed (and every later one that leaves it null) keeps its
# canonical form and hash; setting or clearing it afterwards changes the hash.
OPTIONAL_HASHED_FIELDS = ("patient_ids",)


def _canonical_value(value):
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    return value


def entry_canonical_json(*, fields: dict, prev_hash: str) -> str:
    """Sorted keys, no whitespace, UTC timestamps in microseconds: the same bytes on every backend."""
    payload = {name: _canonical_value(fields[name]) for name in HASHED_FIELDS}
    payload.update({name: fields[name] for name in OPTIONAL_HASHED_FIELDS if fields.get(name) is not None})
    payload["prev_hash"] = prev_hash
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash_compute(*, fields: dict, prev_hash: str) -> str:
    return hashlib.sha256(entry_canonical_json(fields=fields, prev_hash=prev_hash).encode("utf-8")).hexdigest()


def entry_fields(entry) -> dict:
    """The hashed fields of a saved or unsaved ``AccessLogEntry``."""
    return {name: getattr(entry, name) for name in (*HASHED_FIELDS, *OPTIONAL_HASHED_FIELDS)}
