"""The Django admin attacked as a clinic admin would: every URL of every registered model admin, generated from
the admin site itself (a model registered later is covered, or fails here until it has records to aim at), for the
clinic admin's own clinic's record, another clinic's record and a superuser's account, by GET and by POST.

What is expected comes from the clinic admin role's permissions, not from a hand-written list: a model it may not
view answers 403 everywhere; a model it may view shows its own clinic's records and their history and nothing of
another clinic's; nothing is written through a page it may only read, history pages write nothing for anybody, and
every refused write leaves the whole database as it was."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.db.models.fields.files import FieldFile
from django.forms.models import model_to_dict
from django.urls import reverse
from rest_framework.authtoken.models import Token, TokenProxy

from classifier.labels import PLANE_LABELS
from classifier.models import ModelVersion, WebhookDelivery, WebhookEndpoint
from dicom.services import dicom_peer_create
from fetalsite.accounts.roles import ROLE_PERMISSIONS, Role
from fetalsite.audit.services import access_log_record
from tests.api.conftest import classify, upload
from tests.biometry.conftest import card_without_model, measured
from tests.dbstate import database_snapshot
from tests.factories import StudyFactory, UserFactory

REGISTERED = sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)
CLINIC_ADMIN_PERMS = {f"{app}.{codename}" for app, codename in ROLE_PERMISSIONS[Role.CLINIC_ADMIN]}
# What an attacker would post: the probe's escalation (clinic, superuser) and a change to every name-like field.
FORGED = {
    "is_superuser": "on",
    "is_staff": "on",
    "is_active": "on",
    "username": "forged",
    "name": "Forged",
    "mrn": "FORGED-1",
    "given_name": "Forged",
    "family_name": "Forged",
    "notes": "forged",
    "reviewed_label": PLANE_LABELS[-1],
    "review_comment": "forged",
    "url": "https://forged.example.org/",
    "password1": "forged-Passw0rd-123",
    "password2": "forged-Passw0rd-123",
}


def _prediction_for(study, user):
    return classify(upload(study, seed=study.id, user=user))


def _clinic_records(clinic, user, label: str, *, superuser) -> dict:
    study = StudyFactory(patient__clinic=clinic, patient__mrn=f"{label}-1", created_by=user)
    peer = dicom_peer_create(clinic=clinic, ae_title=f"{label}_US", allowed_addresses="127.0.0.1", created_by=superuser)
    endpoint = WebhookEndpoint.objects.create(clinic=clinic, url=f"https://{label.lower()}.example.org/hook")
    prediction = _prediction_for(study, user)  # a brain plane: its measurement job is queued
    measurement = measured(prediction.job.image)
    delivery = WebhookDelivery.objects.filter(endpoint=endpoint).first() or WebhookDelivery.objects.create(
        endpoint=endpoint, event_type="prediction.created", payload={}
    )
    entry = access_log_record(
        user=user, action="VIEW", object_type="study", object_id=study.id, patient_id=study.patient_id,
        clinic_id=clinic.id, path=f"/studies/{study.id}/", method="GET", status_code=200,
    )  # fmt: skip
    return {
        "accounts.clinic": clinic,
        "accounts.user": user,
        "patients.patient": study.patient,
        "patients.study": study,
        "patients.ultrasoundimage": prediction.job.image,
        "classifier.classificationjob": prediction.job,
        "classifier.prediction": prediction,
        "biometry.measurementjob": measurement.job,
        "biometry.measurement": measurement,
        "classifier.webhookendpoint": endpoint,
        "classifier.webhookdelivery": delivery,
        "audit.accesslogentry": entry,
        "dicom.dicompeer": peer,
        "authtoken.tokenproxy": TokenProxy.objects.get(key=Token.objects.get_or_create(user=user)[0].key),
    }


@pytest.fixture
def world(north, south, settings, tmp_path):
    """Two clinics with one record of every kind each, North's clinic admin, and two superusers: one outside
    any clinic and one placed in North (which is what the probe's escalation did)."""
    ModelVersion.objects.create(
        name="tiny", version="1", file_path="tiny.keras", sha256="0" * 64, class_labels=PLANE_LABELS,
        input_size=32, review_threshold=0.5, is_active=True,
    )  # fmt: skip
    settings.BIOMETRY_MODEL_CARD = card_without_model(tmp_path)
    north_admin = UserFactory(username="admin_north", clinic=north, is_staff=True, role=Role.CLINIC_ADMIN)
    root = UserFactory(username="root", clinic=None, is_superuser=True, is_staff=True, role=None)
    own = _clinic_records(north, UserFactory(username="sono_north", clinic=north), "NORTH", superuser=root)
    other = _clinic_records(south, UserFactory(username="sono_south", clinic=south), "SOUTH", superuser=root)
    root_in_north = UserFactory(username="root_north", clinic=north, is_superuser=True, is_staff=True, role=None)
    return {"admin": north_admin, "root": root, "own": own, "other": other, "superusers": [root, root_in_north]}


def _global_object(model):
    """A record of a model that belongs to no clinic (model versions, groups, lock-out records)."""
    from django.contrib.auth.models import Group

    if model is ModelVersion:
        return ModelVersion.objects.get()
    if model is Group:
        return Group.objects.get(name=Role.SONOGRAPHER)
    return None  # axes' records: only their list and add pages are probed


def _targets(model, world) -> list[tuple[str, object]]:
    """(kind, record) pairs to aim every detail URL at; an unknown scoped model fails loudly."""
    key = model._meta.label_lower
    if key in world["own"]:
        targets = [("own", world["own"][key]), ("other", world["other"][key])]
        if key == "accounts.user":
            targets += [("other", superuser) for superuser in world["superusers"]]
        return targets
    if any(field.name == "clinic" for field in model._meta.get_fields()) or hasattr(model.objects, "for_clinics"):
        pytest.fail(f"{key} is clinic data registered in the admin: add its records to the matrix's world")
    record = _global_object(model)
    return [("global", record)] if record is not None else []


def _form_value(value):
    if value is None:
        return ""
    if isinstance(value, list):
        return [item.pk if hasattr(item, "pk") else item for item in value]
    if isinstance(value, FieldFile):
        return value.name or ""
    return value


def _forged_body(record, world) -> dict:
    body = {key: _form_value(value) for key, value in model_to_dict(record).items()}
    body.update(FORGED, clinic=world["admin"].clinic_id, action="delete_selected", post="yes")
    body["_selected_action"] = [record.pk]
    return body


def _url_names(model_admin) -> list[tuple[str, int]]:
    """Every named URL of a model admin, with how many record ids it takes."""
    names = []
    for pattern in model_admin.get_urls():
        if pattern.name:
            names.append((pattern.name, pattern.pattern.regex.groups))
    return names


def _history_id(record) -> int | None:
    history = getattr(type(record), "history", None)
    if history is None:
        return None
    version = type(record).history.filter(**{type(record)._meta.pk.attname: record.pk}).order_by("history_id")
    return version.values_list("history_id", flat=True).first()


def _url(name: str, arity: int, record) -> str | None:
    if arity == 0:
        return reverse(f"admin:{name}")
    if record is None:
        return None
    if arity == 1:
        return reverse(f"admin:{name}", args=[record.pk])
    history_id = _history_id(record)
    return None if history_id is None else reverse(f"admin:{name}", args=[record.pk, history_id])


def _may(model, action: str) -> bool:
    return f"{model._meta.app_label}.{action}_{model._meta.model_name}" in CLINIC_ADMIN_PERMS


def _expected_get(model, name: str, kind: str) -> set[int]:
    """The statuses a clinic admin's GET may answer for this URL and target."""
    if not _may(model, "view") and not _may(model, "change"):
        return {302, 403, 404}  # refused, or (Django looks the record up first) sent back to the index
    if kind == "other":
        return {302, 403, 404}  # the admin's "does not exist" redirect to its index, or a refusal
    if name.endswith("_delete"):
        return {200} if _may(model, "delete") else {403}
    if name.endswith("_add"):
        return {200} if _may(model, "add") else {403}
    if name.endswith("_password_change"):
        return {200} if _may(model, "change") else {403}
    if name.endswith("_change") or name.endswith(("_history", "_simple_history", "_changelist")):
        return {200}
    return {200, 302}  # the bare object URL redirects to its change page


def _write_allowed(model, name: str, kind: str) -> bool:
    """Writes a clinic admin may make through this URL: their own clinic's accounts and DICOM senders, nothing else."""
    manageable = model._meta.label_lower in {"accounts.user", "dicom.dicompeer"}
    return manageable and kind == "own" and not name.endswith("_simple_history")


PARAMS = [pytest.param(model, model_admin, id=model._meta.label) for model, model_admin in REGISTERED]


@pytest.mark.parametrize(("model", "model_admin"), PARAMS)
class TestClinicAdminAgainstEveryAdminUrl:
    def test_reads_show_only_what_the_role_may_see(self, client, world, model, model_admin):
        client.force_login(world["admin"])
        for name, arity in _url_names(model_admin):
            targets = [("own", None)] if arity == 0 else _targets(model, world)
            for kind, record in targets:
                url = _url(name, arity, record)
                if url is None:
                    continue
                response = client.get(url)
                assert response.status_code in _expected_get(model, name, kind), (url, kind, response.status_code)
                if response.status_code == 302:
                    assert not response.url.startswith(url), (url, response.url)
                if kind == "other" and response.status_code == 200:
                    pytest.fail(f"{url} showed another clinic's record")

    def test_refused_writes_change_nothing(self, client, world, model, model_admin):
        client.force_login(world["admin"])
        for name, arity in _url_names(model_admin):
            targets = [("own", world["own"].get(model._meta.label_lower))] if arity == 0 else _targets(model, world)
            for kind, record in targets:
                url = _url(name, arity, record if arity else None)
                if url is None or _write_allowed(model, name, kind):
                    continue
                before = database_snapshot()
                response = client.post(url, _forged_body(record, world) if record is not None else dict(FORGED))
                assert response.status_code != 500, url
                assert database_snapshot() == before, f"POST {url} ({kind}) changed the database"


@pytest.mark.parametrize(("model", "model_admin"), PARAMS)
def test_history_pages_write_nothing_even_for_a_superuser(client, world, model, model_admin):
    client.force_login(world["root"])
    for name, arity in _url_names(model_admin):
        if not name.endswith("_simple_history"):
            continue
        for _, record in _targets(model, world):
            url = _url(name, arity, record)
            if url is None:
                continue
            assert client.get(url).status_code == 200, url
            before = database_snapshot()
            assert client.post(url, _forged_body(record, world)).status_code == 403, url
            assert database_snapshot() == before, url
