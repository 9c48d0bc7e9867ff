"""Appending to the chain, immutability through the ORM and the database, and concurrent appends."""

from __future__ import annotations

import threading

import pytest
from django.db import IntegrityError, InternalError, ProgrammingError, connection, transaction

from fetalsite.audit.chain import GENESIS_HASH, entry_fields, entry_hash_compute
from fetalsite.audit.models import AccessLogEntry, AccessLogHead, AccessLogImmutable
from fetalsite.audit.selectors import access_log_verify
from fetalsite.audit.services import access_log_record


def _record(user, n: int = 1, **overrides):
    kwargs = {"action": "VIEW", "object_type": "study", "object_id": 1, "patient_id": 1, "path": "/studies/1/"}
    kwargs.update(overrides)
    return [access_log_record(user=user, method="GET", status_code=200, **kwargs) for _ in range(n)]


@pytest.mark.django_db
class TestAccessLogRecord:
    def test_entries_chain_from_the_genesis_hash(self, sonographer):
        first, second = _record(sonographer, 2)

        assert first.prev_hash == GENESIS_HASH
        assert second.prev_hash == first.entry_hash
        assert first.entry_hash == entry_hash_compute(fields=entry_fields(first), prev_hash=GENESIS_HASH)
        assert AccessLogHead.objects.get().last_hash == second.entry_hash

    def test_hash_covers_the_values_read_back_from_the_database(self, sonographer):
        entry = _record(sonographer, ip="2001:DB8::1")[0]

        stored = AccessLogEntry.objects.get(id=entry.id)

        assert stored.ip == "2001:db8::1"
        assert entry_hash_compute(fields=entry_fields(stored), prev_hash=stored.prev_hash) == stored.entry_hash

    def test_clinic_defaults_to_the_users_and_anonymous_has_no_user(self, sonographer):
        from django.contrib.auth.models import AnonymousUser

        own = _record(sonographer)[0]
        anonymous = _record(AnonymousUser())[0]

        assert own.clinic_id == sonographer.clinic_id
        assert (anonymous.user, anonymous.username, anonymous.clinic_id) == (None, "", None)
        assert access_log_verify().ok

    def test_a_missing_chain_head_is_rebuilt_from_the_last_entry(self, sonographer):
        first = _record(sonographer)[0]
        AccessLogHead.objects.all().delete()

        second = _record(sonographer)[0]

        assert second.prev_hash == first.entry_hash
        assert AccessLogHead.objects.get().length == 2
        assert access_log_verify().ok

    def test_an_append_costs_a_few_queries(self, sonographer, django_assert_max_num_queries):
        _record(sonographer)

        # savepoint, lock-and-read the head, insert, move the head, release
        with django_assert_max_num_queries(5):
            _record(sonographer)

    def test_two_entries_can_never_share_a_prev_hash(self, sonographer):
        entry = _record(sonographer)[0]
        forged = AccessLogEntry(
            action="VIEW", object_type="study", path="/", method="GET", prev_hash=entry.prev_hash, entry_hash="f" * 64
        )

        with pytest.raises(IntegrityError), transaction.atomic():
            forged.save()


@pytest.mark.django_db
class TestImmutability:
    def test_saving_an_existing_entry_is_refused(self, sonographer):
        entry = _record(sonographer)[0]
        entry.username = "somebody_else"

        with pytest.raises(AccessLogImmutable):
            entry.save()

    def test_deleting_an_entry_is_refused(self, sonographer):
        entry = _record(sonographer)[0]

        with pytest.raises(AccessLogImmutable):
            entry.delete()

    def test_queryset_update_and_delete_are_refused(self, sonographer):
        _record(sonographer, 2)

        with pytest.raises(AccessLogImmutable):
            AccessLogEntry.objects.filter(action="VIEW").update(action="LIST")
        with pytest.raises(AccessLogImmutable):
            AccessLogEntry.objects.all().delete()
        assert AccessLogEntry.objects.filter(action="VIEW").count() == 2

    @pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigger exists on PostgreSQL only")
    @pytest.mark.parametrize(
        "sql",
        [
            "UPDATE audit_accesslogentry SET username = 'x'",
            "DELETE FROM audit_accesslogentry",
        ],
    )
    def test_database_refuses_raw_update_and_delete(self, sonographer, sql):
        _record(sonographer)

        with (
            pytest.raises((InternalError, ProgrammingError), match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql)

        assert AccessLogEntry.objects.filter(username="sono_north").count() == 1


@pytest.mark.django_db(transaction=True)
class TestConcurrentAppends:
    def test_threads_appending_at_once_keep_one_unbroken_chain(self, sonographer):
        threads_n, per_thread = 6, 8
        barrier = threading.Barrier(threads_n)
        errors = []

        def append():
            try:
                barrier.wait()
                _record(sonographer, per_thread)
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=append) for _ in range(threads_n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)

        assert errors == []
        entries = list(AccessLogEntry.objects.order_by("id"))
        assert len(entries) == threads_n * per_thread
        assert len({entry.prev_hash for entry in entries}) == len(entries)
        report = access_log_verify()
        assert report.ok, report.reason
        assert report.checked == threads_n * per_thread
