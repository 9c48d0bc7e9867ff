import io
import json
import shutil

import pytest
from django.core.management import CommandError, call_command

from classifier.models import ModelVersion
from fetalsite.accounts.models import User


class TestSeedDemo:
    def test_creates_the_clinics_users_and_roles_and_is_safe_to_run_twice(self, db):
        # An explicit stream, not capsys: a command's output wrapper outliving capsys's closed stream
        # raises when it is garbage-collected during a later test.
        call_command("seed_demo", password="first-password-1", stdout=io.StringIO())
        out = io.StringIO()
        call_command("seed_demo", password="second-password-2", stdout=out)
        output = out.getvalue()

        users = {user.username: user for user in User.objects.select_related("clinic")}
        assert set(users) == {
            "sono_north",
            "clin_north",
            "api_north",
            "sono_south",
            "clin_south",
            "admin_north",
            "admin",
        }
        assert users["sono_north"].clinic.name == users["api_north"].clinic.name == "North Clinic"
        assert users["sono_south"].clinic.name == "South Clinic"
        assert list(users["clin_north"].groups.values_list("name", flat=True)) == ["clinician"]
        assert users["clin_north"].has_perm("classifier.review_prediction")
        assert not users["sono_north"].has_perm("classifier.review_prediction")
        assert users["admin"].is_superuser and users["admin"].clinic is None
        clinic_admin = users["admin_north"]
        assert clinic_admin.is_staff and not clinic_admin.is_superuser and clinic_admin.clinic.name == "North Clinic"
        assert clinic_admin.has_perm("audit.view_accesslogentry") and not users["sono_north"].is_staff
        assert "admin_north" in output and "Clinic admin" in output
        assert users["sono_north"].check_password("second-password-2")
        assert "Password: second-password-2" in output

    def test_prints_a_random_password_once_when_none_is_given(self, db):
        out = io.StringIO()
        call_command("seed_demo", stdout=out)
        password = out.getvalue().split("Password: ")[1].strip()
        assert len(password) >= 12 and User.objects.get(username="sono_south").check_password(password)


class TestRegisterModels:
    def test_registers_every_card_and_activates_one_when_none_is_active(self, db, settings, tiny_model_dir, tmp_path):
        shutil.copytree(tiny_model_dir, tmp_path / "models")
        settings.MODELS_DIR = tmp_path / "models"
        call_command("register_models", stdout=io.StringIO())
        call_command("register_models", stdout=io.StringIO())  # idempotent
        assert list(ModelVersion.objects.values_list("name", "version", "is_active")) == [("tiny", "1", True)]

    def test_activates_the_highest_version_in_number_order(self, db, settings, tiny_model_dir, tmp_path):
        shutil.copytree(tiny_model_dir, tmp_path / "models")
        settings.MODELS_DIR = tmp_path / "models"
        card = json.loads((tmp_path / "models" / "tiny-v1.card.json").read_text())
        for version in ("2", "10"):
            (tmp_path / "models" / f"tiny-v{version}.card.json").write_text(json.dumps({**card, "version": version}))
        call_command("register_models", stdout=io.StringIO())
        assert ModelVersion.objects.get(is_active=True).version == "10"

    def test_refuses_a_card_whose_file_does_not_match(self, db, settings, tiny_model_dir, tmp_path):
        shutil.copytree(tiny_model_dir, tmp_path / "models")
        settings.MODELS_DIR = tmp_path / "models"
        card = tmp_path / "models" / "tiny-v1.card.json"
        card.write_text(json.dumps({**json.loads(card.read_text()), "sha256": "0" * 64}))
        with pytest.raises(CommandError, match="differs"):
            call_command("register_models", stdout=io.StringIO())
        assert not ModelVersion.objects.exists()

    def test_the_committed_model_card_registers(self, db, settings):
        from pathlib import Path

        models_dir = Path(settings.BASE_DIR) / "models"
        cards = sorted(models_dir.glob("fetal-planes-v*.card.json"), key=lambda p: int(p.name[14:].split(".")[0]))
        if not cards:
            pytest.skip("no committed model card")
        newest = json.loads(cards[-1].read_text())
        settings.MODELS_DIR = models_dir
        call_command("register_models", stdout=io.StringIO())
        active = ModelVersion.objects.get(is_active=True)
        assert (active.name, active.version, active.input_size) == ("fetal-planes", newest["version"], 256)
        assert active.novelty_threshold == newest.get("novelty_threshold")
        assert ModelVersion.objects.count() == len(cards)

    def test_leaves_cards_of_other_tasks_alone(self, db, settings, tiny_model_dir, tmp_path):
        """The head segmenter's card sits in MODELS_DIR beside the classifier's: register_models skips it."""
        from biometry.ml.segmentation import build_untrained_segmenter_files

        shutil.copytree(tiny_model_dir, tmp_path / "models")
        build_untrained_segmenter_files(tmp_path / "models", name="fetal-head-test")
        settings.MODELS_DIR = tmp_path / "models"
        out = io.StringIO()
        call_command("register_models", stdout=out)
        assert list(ModelVersion.objects.values_list("name", "version", "is_active")) == [("tiny", "1", True)]
        assert "fetal-head" not in out.getvalue()
