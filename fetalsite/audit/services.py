"""Writes to the access log: appending one entry to the hash chain."""

from __future__ import annotations

import ipaddress

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from fetalsite.audit.chain import GENESIS_HASH, entry_fields, entry_hash_compute
from fetalsite.audit.models import AccessLogEntry, AccessLogHead

HEAD_ID = 1


def _clean_ip(ip: str | None) -> str:
    if not ip:
        return ""
    try:
        return str(ipaddress.ip_address(ip.strip()))
    except ValueError:
        return ""


def _head_lock() -> AccessLogHead:
    """Lock the chain head for the rest of the transaction and return it.

    The first statement is a write to the head row. On PostgreSQL the UPDATE takes that row's lock
    (as ``SELECT ... FOR UPDATE`` would), so a concurrent append waits here until this transaction
    commits and then reads the hash it wrote. On SQLite a write takes the database write lock at once;
    reading first would let two appends read the same head and fail to upgrade their locks.
    """
    if AccessLogHead.objects.filter(id=HEAD_ID).update(length=F("length")) == 0:
        # First append (or a flushed test database): start the head from whatever chain exists.
        last = AccessLogEntry.objects.order_by("-id").first()
        try:
            with transaction.atomic():
                AccessLogHead.objects.create(
                    id=HEAD_ID,
                    last_hash=last.entry_hash if last else GENESIS_HASH,
                    length=AccessLogEntry.objects.count(),
                    last_entry_id=last.id if last else None,
                )
        except IntegrityError:
            pass  # another append created it first; the locking select below waits for it
    return AccessLogHead.objects.select_for_update().get(id=HEAD_ID)


def access_log_record(
    *,
    user,
    action: str,
    object_type: str,
    object_id: int | None = None,
    patient_id: int | None = None,
    clinic_id: int | None = None,
    path: str,
    method: str,
    status_code: int | None = None,
    ip: str | None = None,
    request_id: str = "",
) -> AccessLogEntry:
    """Append one entry, chained to the previous one; appends are serialised on the chain head."""
    authenticated = user is not None and user.is_authenticated
    with transaction.atomic():
        head = _head_lock()
        entry = AccessLogEntry(
            created_at=timezone.now(),
            user=user if authenticated else None,
            username=user.get_username() if authenticated else "",
            clinic_id=clinic_id
            if clinic_id is not None
            else (getattr(user, "clinic_id", None) if authenticated else None),
            action=action,
            object_type=object_type,
            object_id=object_id,
            patient_id=patient_id,
            path=path[:2048],
            method=method.upper()[:8],
            status_code=status_code,
            ip=_clean_ip(ip),
            request_id=request_id[:64],
            prev_hash=head.last_hash,
        )
        entry.full_clean(exclude=["entry_hash", "user", "clinic"], validate_unique=False, validate_constraints=False)
        entry.entry_hash = entry_hash_compute(fields=entry_fields(entry), prev_hash=entry.prev_hash)
        entry.save(force_insert=True)
        AccessLogHead.objects.filter(id=HEAD_ID).update(
            last_hash=entry.entry_hash, length=F("length") + 1, last_entry_id=entry.id
        )
    return entry
