"""`manage.py evaluate_classifier` on the tiny untrained model: its output names every miss of the bar."""

import csv
import hashlib
import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from classifier.ml.data import CLASS_NAMES
from classifier.ml.evaluate import bar_failures
from tests.images import png_bytes


@pytest.fixture(scope="module")
def tiny_data_dir(tmp_path_factory) -> Path:
    """A test split of random-noise images, two per plane, in the fetal-planes manifest's format."""
    directory = tmp_path_factory.mktemp("fetal-planes")
    rows = []
    for index, label in enumerate(CLASS_NAMES * 2):
        data = png_bytes(seed=index)
        (directory / f"{index}.png").write_bytes(data)
        rows.append(
            {
                "file": f"{index}.png",
                "label": label,
                "split": "test",
                "source": "tiny",
                "group": f"patient-{index}",
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    with open(directory / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return directory


def evaluate(card: Path, data: Path, *extra: str) -> tuple[str, dict]:
    out, json_out = io.StringIO(), data.parent / f"{data.name}-metrics.json"
    call_command(
        "evaluate_classifier", "--card", str(card), "--data", str(data), "--json-out", str(json_out), *extra, stdout=out
    )
    return out.getvalue(), json.loads(json_out.read_text())


class TestEvaluateClassifierOutput:
    def test_prints_each_shortfall_of_the_bar_on_its_own_line(self, tiny_model_dir, tiny_data_dir):
        output, result = evaluate(tiny_model_dir / "tiny-v1.card.json", tiny_data_dir)

        failures = bar_failures(result)
        assert failures, "an untrained model on noise cannot meet the bar"
        assert f"below the bar of the model issue ({len(failures)}):" in output
        lines = output.splitlines()
        for failure in failures:
            assert f"  {failure}" in lines
        assert "the bar is met" not in output

    def test_check_bar_also_exits_with_the_shortfalls(self, tiny_model_dir, tiny_data_dir):
        with pytest.raises(CommandError, match="below the bar: all: accuracy"):
            evaluate(tiny_model_dir / "tiny-v1.card.json", tiny_data_dir, "--check-bar")
