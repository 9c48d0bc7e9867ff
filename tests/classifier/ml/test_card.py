import io

import pytest
from django.core.management import CommandError, call_command

from classifier.ml.card import newest_card, version_number


def test_newest_card_sorts_versions_as_numbers(tmp_path):
    for name in [
        "fetal-planes-v2.card.json",
        "fetal-planes-v10.card.json",
        "fetal-planes-v9.card.json",
        "fetal-planes-vx.card.json",
        "other-v99.card.json",
        "fetal-planes-v11.keras",
    ]:
        (tmp_path / name).write_text("{}")

    assert newest_card(tmp_path).name == "fetal-planes-v10.card.json"


def test_newest_card_is_none_in_an_empty_folder(tmp_path):
    assert newest_card(tmp_path) is None


def test_version_number_reads_only_this_models_cards(tmp_path):
    assert version_number(tmp_path / "fetal-planes-v12.card.json") == 12
    assert version_number(tmp_path / "fetal-planes-vx.card.json") is None
    assert version_number(tmp_path / "other-v3.card.json") is None


def test_evaluate_without_a_card_refuses_when_models_dir_has_none(settings, tmp_path):
    settings.MODELS_DIR = tmp_path
    with pytest.raises(CommandError, match="no model card"):
        call_command("evaluate_classifier", stdout=io.StringIO())
