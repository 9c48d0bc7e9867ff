"""Writes to the access log: appending one entry to the hash chain."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, transaction
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


def access_log_head_ensure(*, using: str = DEFAULT_DB_ALIAS) -> AccessLogHead:
    """The chain head (id 1), created when missing so it continues whatever chain exists; safe to repeat.

    Runs after every migrate and test-database flush (see apps.py), so appends rarely have to create it.
    """
    heads = AccessLogHead.objects.using(using)
    head = heads.filter(id=HEAD_ID).first()
    if head is not None:
        return head
    entries = AccessLogEntry.objects.using(using)
    last = entries.order_by("-id").first()
    try:
        with transaction.atomic(using=using):
            return heads.create(
                id=HEAD_ID,
                last_hash=last.entry_hash if last else GENESIS_HASH,
                length=entries.count(),
                last_entry_id=last.id if last else None,
            )
    except IntegrityError:
        return heads.get(id=HEAD_ID)  # a concurrent append created it first


def _head_lock() -> str:
    """Lock the chain head until the transaction ends and return the chain's last hash, in one statement.

    The statement is a write (``UPDATE ... RETURNING``). On PostgreSQL it takes the head row's lock, as
    ``SELECT ... FOR UPDATE`` would: a concurrent append waits here until this transaction commits, then
    reads the hash that one wrote. On SQLite a write takes the database write lock at once, whereas
    reading first would let two appends read the same head and then fail to upgrade their locks.
    """
    table = connection.ops.quote_name(AccessLogHead._meta.db_table)
    sql = f"UPDATE {table} SET length = length WHERE id = %s RETURNING last_hash"  # noqa: S608 - no input in it
    for _attempt in range(2):
        with connection.cursor() as cursor:
            cursor.execute(sql, [HEAD_ID])
            row = cursor.fetchone()
        if row is not None:
            return row[0]
        access_log_head_ensure()
    raise RuntimeError("the access log chain head could not be created")


def access_log_record(
    *,
    user,
    action: str,
    object_type: str,
    object_id: int | None = None,
    patient_id: int | None = None,
    patient_ids: Iterable[int] | None = None,
    clinic_id: int | None = None,
    path: str,
    method: str,
    status_code: int | None = None,
    ip: str | None = None,
    request_id: str = "",
) -> AccessLogEntry:
    """Append one entry, chained to the previous one; appends are serialised on the chain head.

    ``patient_ids``: every patient a list showed (stored sorted, once each); None when no list was shown.
    """
    authenticated = user is not None and user.is_authenticated
    with transaction.atomic():
        prev_hash = _head_lock()
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
            patient_ids=None if patient_ids is None else sorted({int(value) for value in patient_ids}),
            path=path[:2048],
            method=method.upper()[:8],
            status_code=status_code,
            ip=_clean_ip(ip),
            request_id=request_id[:64],
            prev_hash=prev_hash,
        )
        entry.full_clean(exclude=["entry_hash", "user", "clinic"], validate_unique=False, validate_constraints=False)
        entry.entry_hash = entry_hash_compute(fields=entry_fields(entry), prev_hash=entry.prev_hash)
        entry.save(force_insert=True)
        AccessLogHead.objects.filter(id=HEAD_ID).update(
            last_hash=entry.entry_hash, length=F("length") + 1, last_entry_id=entry.id
        )
    return entry
