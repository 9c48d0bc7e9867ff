from classifier.ml.card import newest_card


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
