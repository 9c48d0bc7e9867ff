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


def _canonical_value(value):
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    return value


def entry_canonical_json(*, fields: dict, prev_hash: str) -> str:
    """Sorted keys, no whitespace, UTC timestamps in microseconds: the same bytes on every backend."""
    payload = {name: _canonical_value(fields[name]) for name in HASHED_FIELDS}
    payload["prev_hash"] = prev_hash
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash_compute(*, fields: dict, prev_hash: str) -> str:
    return hashlib.sha256(entry_canonical_json(fields=fields, prev_hash=prev_hash).encode("utf-8")).hexdigest()


def entry_fields(entry) -> dict:
    """The hashed fields of a saved or unsaved ``AccessLogEntry``."""
    return {name: getattr(entry, name) for name in HASHED_FIELDS}
