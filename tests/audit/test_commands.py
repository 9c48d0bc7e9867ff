"""verify_access_log: an intact chain passes; any raw SQL tampering is found and named."""

from __future__ import annotations

import hashlib
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from fetalsite.audit.chain import entry_fields, entry_hash_compute
from fetalsite.audit.models import AccessLogEntry
from fetalsite.audit.services import access_log_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def entries(sonographer):
    return [
        access_log_record(
            user=sonographer,
            action="VIEW",
            object_type="study",
            object_id=n,
            patient_id=100 + n,
            path=f"/studies/{n}/",
            method="GET",
            status_code=200,
            ip="10.0.0.1",
            request_id=f"req-{n}",
        )
        for n in range(5)
    ]


def _raw(sql: str, params=()):
    """What someone with database access would do, past the ORM and (on PostgreSQL) past the trigger."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Settle the deferred foreign-key checks of this test's inserts, which ALTER TABLE would refuse.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE audit_accesslogentry DISABLE TRIGGER audit_accesslogentry_append_only")
        cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_accesslogentry ENABLE TRIGGER audit_accesslogentry_append_only")


def _run() -> tuple[int, str, str]:
    """Run the command: (exit code `manage.py` would give, stdout, stderr).

    Not through ManagementUtility: it calls django.setup() again, whose logging reconfiguration
    closes pytest's log-capture handlers and breaks every later test of the run.
    """
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("verify_access_log", stdout=out, stderr=err)
    except CommandError as error:
        err.write(str(error))
        return error.returncode, out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def _exit_code() -> int:
    return _run()[0]


class TestVerifyAccessLog:
    def test_intact_chain_verifies(self, entries):
        code, out, _ = _run()

        assert code == 0 and "access log intact: 5 entries" in out

    def test_empty_log_verifies(self, db):
        code, out, _ = _run()

        assert code == 0 and "0 entries" in out

    def test_altered_field_is_detected_and_named(self, entries):
        _raw("UPDATE audit_accesslogentry SET patient_id = 999 WHERE id = %s", [entries[2].id])

        with pytest.raises(CommandError, match=rf"broken at entry #{entries[2].id}: .*altered"):
            call_command("verify_access_log", stdout=io.StringIO(), stderr=io.StringIO())
        code, _, err = _run()
        assert code == 1 and f"entry #{entries[2].id}" in err

    def test_altered_entry_with_recomputed_hash_breaks_the_next_link(self, entries):
        forged = AccessLogEntry.objects.get(id=entries[1].id)
        forged.username = "nobody"
        new_hash = entry_hash_compute(fields=entry_fields(forged), prev_hash=forged.prev_hash)
        _raw(
            "UPDATE audit_accesslogentry SET username = %s, entry_hash = %s WHERE id = %s",
            ["nobody", new_hash, entries[1].id],
        )

        with pytest.raises(CommandError, match=rf"broken at entry #{entries[2].id}: its prev_hash"):
            call_command("verify_access_log", stdout=io.StringIO(), stderr=io.StringIO())

    def test_deleted_entry_in_the_middle_is_detected(self, entries):
        _raw("DELETE FROM audit_accesslogentry WHERE id = %s", [entries[2].id])

        with pytest.raises(CommandError, match=rf"broken at entry #{entries[3].id}"):
            call_command("verify_access_log", stdout=io.StringIO(), stderr=io.StringIO())

    def test_deleted_last_entry_is_detected_through_the_chain_head(self, entries):
        _raw("DELETE FROM audit_accesslogentry WHERE id = %s", [entries[-1].id])

        with pytest.raises(CommandError, match=r"removed from the end"):
            call_command("verify_access_log", stdout=io.StringIO(), stderr=io.StringIO())

    def test_inserted_entry_is_detected(self, entries):
        fake_hash = hashlib.sha256(b"forged").hexdigest()
        _raw(
            "INSERT INTO audit_accesslogentry (created_at, username, action, object_type, path, method, ip, "
            "request_id, prev_hash, entry_hash) VALUES (%s, 'x', 'VIEW', 'study', '/', 'GET', '', '', %s, %s)",
            [entries[0].created_at, fake_hash, fake_hash[::-1]],
        )

        with pytest.raises(CommandError, match="broken at entry"):
            call_command("verify_access_log", stdout=io.StringIO(), stderr=io.StringIO())
