"""What a clinic admin sees in the Django admin (issue 19, item 10): no other clinic's name in any list's filters,
its own clinic's lock-outs only (and clears them), and the active model's switch not at all (superusers only,
who are told it applies to every clinic)."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import reverse

from classifier.models import ModelVersion
from fetalsite.accounts.services import lockout_clear
from tests.accounts.test_admin_matrix import REGISTERED, _may, world  # noqa: F401 (world: a fixture)

PASSWORD = "correct-horse-battery"


def _lock_out(username: str) -> None:
    """Lock an account out for real: the failure limit of wrong passwords through the login page."""
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/login/", {"username": username, "password": "wrong-password"})
    assert client.post("/login/", {"username": username, "password": PASSWORD}).status_code == 429


def _logs_in(username: str) -> bool:
    return Client().post("/login/", {"username": username, "password": PASSWORD}).status_code == 302


VIEWABLE = [
    pytest.param(model, id=model._meta.label) for model, _ in REGISTERED if _may(model, "view") or _may(model, "change")
]


@pytest.mark.parametrize("model", VIEWABLE)
def test_no_list_names_another_clinic_in_its_filters(client, world, model):  # noqa: F811
    _lock_out("sono_south")  # a lock-out of the other clinic too
    client.force_login(world["admin"])
    changelist = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")

    html = client.get(changelist).content.decode()

    assert "South Clinic" not in html
    assert "sono_south" not in html


def test_clinic_filters_do_name_clinics_to_a_superuser(client, world):  # noqa: F811
    """The check above looks at lists whose filters name clinics: a superuser's name both; a clinic admin's has
    one clinic, which Django does not offer as a filter at all."""
    client.force_login(world["root"])

    response = client.get(reverse("admin:patients_patient_changelist"))

    changelist = response.context["cl"]
    (clinic_filter,) = [spec for spec in changelist.filter_specs if spec.field_path == "clinic"]
    names = " ".join(str(choice["display"]) for choice in clinic_filter.choices(changelist))
    assert "North Clinic" in names and "South Clinic" in names


class TestLockouts:
    def test_a_clinic_admin_sees_and_clears_only_its_clinics_lockouts(self, client, world):  # noqa: F811
        _lock_out("sono_north")
        _lock_out("sono_south")
        client.force_login(world["admin"])
        changelist = reverse("admin:axes_accessattempt_changelist")

        listed = client.get(changelist).content.decode()
        every_id = list(AccessAttempt.objects.values_list("id", flat=True))
        action = {"action": "delete_selected", "_selected_action": every_id, "post": "yes"}
        cleared = client.post(changelist, action)

        assert "sono_north" in listed and "sono_south" not in listed
        assert cleared.status_code == 302
        assert list(AccessAttempt.objects.values_list("username", flat=True)) == ["sono_south"]
        assert _logs_in("sono_north")
        assert not _logs_in("sono_south")

    def test_the_service_refuses_another_clinics_lockout(self, world):  # noqa: F811
        _lock_out("sono_south")

        with pytest.raises(PermissionDenied):
            lockout_clear(attempts=list(AccessAttempt.objects.all()), cleared_by=world["admin"])

        assert AccessAttempt.objects.filter(username="sono_south").exists()

    def test_a_superuser_clears_any(self, world):  # noqa: F811
        _lock_out("sono_south")

        assert lockout_clear(attempts=list(AccessAttempt.objects.all()), cleared_by=world["root"]) == 1
        assert _logs_in("sono_south")

    def test_the_expired_clean_up_of_every_clinic_is_the_superusers(self, client, world):  # noqa: F811
        _lock_out("sono_north")  # a list with a record shows its actions
        client.force_login(world["admin"])
        html = client.get(reverse("admin:axes_accessattempt_changelist")).content.decode()
        client.force_login(world["root"])
        root_html = client.get(reverse("admin:axes_accessattempt_changelist")).content.decode()

        assert 'value="cleanup_expired_attempts"' not in html
        assert 'value="cleanup_expired_attempts"' in root_html


class TestModelActivation:
    def test_a_clinic_admin_has_no_activate_action_and_cannot_post_it(self, client, world):  # noqa: F811
        other = ModelVersion.objects.create(
            name="tiny", version="2", file_path="tiny2.keras", sha256="1" * 64, class_labels=["a", "b"],
            input_size=32, review_threshold=0.5,
        )  # fmt: skip
        client.force_login(world["admin"])
        changelist = reverse("admin:classifier_modelversion_changelist")

        html = client.get(changelist).content.decode()
        client.post(changelist, {"action": "activate", "_selected_action": [other.id]})

        assert 'value="activate"' not in html
        other.refresh_from_db()
        assert not other.is_active

    def test_a_superuser_is_told_it_applies_to_every_clinic(self, client, world):  # noqa: F811
        client.force_login(world["root"])

        html = client.get(reverse("admin:classifier_modelversion_changelist")).content.decode()

        assert 'value="activate"' in html
        assert "Make the selected version the active model for every clinic" in html


def test_the_lockout_admin_replaced_axes_own():
    assert type(admin.site._registry[AccessAttempt]).__name__ == "LockoutAdmin"
