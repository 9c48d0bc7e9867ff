"""The access log in the admin: read only for everybody, clinic-scoped, filterable, exported as CSV (logged too)."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth.models import Permission

from fetalsite.audit.models import AccessLogEntry
from fetalsite.audit.selectors import access_log_verify
from fetalsite.audit.services import access_log_record
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/audit/accesslogentry/"


def _record(user, *, patient_id: int, clinic_id: int | None = None):
    return access_log_record(
        user=user,
        action="VIEW",
        object_type="patient",
        object_id=patient_id,
        patient_id=patient_id,
        clinic_id=clinic_id,
        path=f"/patients/{patient_id}/",
        method="GET",
        status_code=200,
        ip="10.0.0.9",
        request_id=f"req-{patient_id}",
    )


@pytest.fixture
def superuser(db):
    return UserFactory(username="root", clinic=None, is_staff=True, is_superuser=True, role=None)


@pytest.fixture
def north_admin(north):
    user = UserFactory(username="admin_north", clinic=north, is_staff=True, role=None)
    user.user_permissions.add(Permission.objects.get(codename="view_accesslogentry"))
    return user


@pytest.fixture
def logged(sonographer, south_sonographer):
    return {
        "north": _record(sonographer, patient_id=11),
        "north_other_patient": _record(sonographer, patient_id=12),
        "south": _record(south_sonographer, patient_id=21),
    }


def _ids(response) -> set[int]:
    return {entry.id for entry in response.context["cl"].result_list}


def _export(client, entries):
    return client.post(
        CHANGELIST, {"action": "export_csv", "_selected_action": [entry.id for entry in entries], "index": 0}
    )


class TestReadOnly:
    def test_superuser_cannot_add_change_or_delete(self, client, superuser, logged):
        client.force_login(superuser)
        entry = logged["north"]
        change_url = f"{CHANGELIST}{entry.id}/change/"

        assert client.get(f"{CHANGELIST}add/").status_code == 403
        assert client.get(f"{CHANGELIST}{entry.id}/delete/").status_code == 403
        assert client.post(f"{CHANGELIST}{entry.id}/delete/", {"post": "yes"}).status_code == 403
        page = client.get(change_url)
        assert page.status_code == 200 and b'name="_save"' not in page.content
        assert client.post(change_url, {"username": "forged"}).status_code == 403
        entry.refresh_from_db()
        assert entry.username == "sono_north" and AccessLogEntry.objects.exclude(action="DENIED").count() == 3
        # Each refused attempt on the log is itself a security event.
        refused = AccessLogEntry.objects.filter(action="DENIED").order_by("id")
        assert [(e.user, e.method, e.status_code, e.object_type) for e in refused] == [
            (superuser, "GET", 403, "audit_accesslogentry"),
            (superuser, "GET", 403, "audit_accesslogentry"),
            (superuser, "POST", 403, "audit_accesslogentry"),
            (superuser, "POST", 403, "audit_accesslogentry"),
        ]
        assert [e.object_id for e in refused][1:] == [entry.id] * 3

    def test_no_bulk_delete_action_is_offered(self, client, superuser, logged):
        client.force_login(superuser)

        response = client.get(CHANGELIST)

        actions = [name for name, _ in response.context["action_form"].fields["action"].choices]
        assert "delete_selected" not in actions and "export_csv" in actions

    def test_bulk_delete_request_changes_nothing(self, client, superuser, logged):
        client.force_login(superuser)

        client.post(CHANGELIST, {"action": "delete_selected", "_selected_action": [logged["north"].id], "post": "yes"})

        assert AccessLogEntry.objects.count() == 3


class TestScopingAndFilters:
    def test_clinic_admin_sees_only_their_clinics_entries(self, client, north_admin, logged):
        client.force_login(north_admin)

        response = client.get(CHANGELIST)

        assert response.status_code == 200
        assert _ids(response) == {logged["north"].id, logged["north_other_patient"].id}
        assert client.get(f"{CHANGELIST}{logged['south'].id}/change/").status_code in (302, 404)

    def test_superuser_sees_every_clinic(self, client, superuser, logged):
        client.force_login(superuser)

        assert _ids(client.get(CHANGELIST)) == {entry.id for entry in logged.values()}

    def test_staff_without_the_view_permission_is_refused(self, client, north, logged):
        client.force_login(UserFactory(username="staff_north", clinic=north, is_staff=True, role=None))

        assert client.get(CHANGELIST).status_code == 403

    def test_filter_by_patient_id(self, client, superuser, logged):
        client.force_login(superuser)

        assert _ids(client.get(CHANGELIST, {"patient_id": 12})) == {logged["north_other_patient"].id}

    def test_filter_by_user_and_by_clinic(self, client, superuser, logged, south_sonographer, south):
        client.force_login(superuser)

        by_user = client.get(CHANGELIST, {"user__id__exact": south_sonographer.id})
        by_clinic = client.get(CHANGELIST, {"clinic__id__exact": south.id})

        assert _ids(by_user) == _ids(by_clinic) == {logged["south"].id}

    def test_filter_by_date(self, client, superuser, logged):
        client.force_login(superuser)
        day = logged["north"].created_at

        same_day = client.get(
            CHANGELIST, {"created_at__year": day.year, "created_at__month": day.month, "created_at__day": day.day}
        )
        other_year = client.get(CHANGELIST, {"created_at__year": day.year - 1})

        assert _ids(same_day) == {entry.id for entry in logged.values()}
        assert _ids(other_year) == set()


class TestCsvExport:
    def test_export_writes_the_selected_entries_and_is_itself_logged(self, client, superuser, logged):
        client.force_login(superuser)

        response = _export(client, [logged["north"], logged["south"]])

        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/csv")
        assert "attachment" in response["Content-Disposition"]
        rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
        assert [int(row["id"]) for row in rows] == [logged["north"].id, logged["south"].id]
        assert rows[0]["username"] == "sono_north" and rows[0]["patient_id"] == "11"
        assert rows[0]["entry_hash"] == logged["north"].entry_hash
        export = AccessLogEntry.objects.get(action="EXPORT")
        assert (export.user, export.object_type, export.method) == (superuser, "access_log", "POST")
        assert export.request_id == response["X-Request-ID"]
        assert access_log_verify().ok

    def test_clinic_admin_cannot_export_another_clinics_entries(self, client, north_admin, logged):
        client.force_login(north_admin)

        response = _export(client, [logged["north"], logged["south"]])

        rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
        assert [int(row["id"]) for row in rows] == [logged["north"].id]
        assert AccessLogEntry.objects.get(action="EXPORT").clinic_id == north_admin.clinic_id

    def test_cells_that_look_like_formulas_are_defused(self, client, superuser, sonographer):
        client.force_login(superuser)
        entry = access_log_record(
            user=sonographer, action="VIEW", object_type="study", path="=HYPERLINK(1)", method="GET"
        )

        response = _export(client, [entry])

        assert "'=HYPERLINK(1)" in b"".join(response.streaming_content).decode()


class TestAdminReadsOfPatientData:
    def test_opening_a_patient_in_the_admin_is_logged(self, client, superuser, study):
        client.force_login(superuser)

        response = client.get(f"/admin/patients/patient/{study.patient_id}/change/")

        assert response.status_code == 200
        entry = AccessLogEntry.objects.get()
        assert (entry.user, entry.action, entry.object_type, entry.patient_id) == (
            superuser,
            "VIEW",
            "patient",
            study.patient_id,
        )
        assert entry.clinic_id == study.patient.clinic_id
