"""Which runtime classifies: the card's LiteRT file by default, Keras when asked for, when the card lists none, or
when the file is missing or altered; what ran is recorded on the prediction. Heatmaps always get Keras."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from classifier import registry
from classifier.ml.litert import export_card
from classifier.models import ClassificationJob
from classifier.registry import classifier_for, keras_classifier_for
from classifier.services import classification_job_run, model_version_register
from patients.services import image_upload
from tests.images import png_bytes


@pytest.fixture(autouse=True)
def _empty_registry(monkeypatch):
    """Each test loads its own models: a worker process starts with none."""
    monkeypatch.setattr(registry, "_cache", {})


@pytest.fixture(scope="session")
def tiny_litert_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny test model with its LiteRT export recorded in its card, made once per session."""
    directory = tmp_path_factory.mktemp("tiny-litert")
    for name in ("tiny-v1.keras", "tiny-v1.card.json"):
        shutil.copy(tiny_model_dir / name, directory / name)
    export_card(directory / "tiny-v1.card.json", data_dir=None)
    return directory


@pytest.fixture
def models_dir(tiny_litert_dir, tmp_path, settings) -> Path:
    """A copy this test may alter, as MODELS_DIR."""
    directory = tmp_path / "models"
    shutil.copytree(tiny_litert_dir, directory)
    settings.MODELS_DIR = directory
    return directory


def _register(models_dir: Path):
    return model_version_register(card_path=models_dir / "tiny-v1.card.json", activate=True)


class TestClassifierFor:
    def test_loads_the_litert_file_the_card_lists(self, db, models_dir):
        classifier = classifier_for(_register(models_dir))

        assert classifier.runtime == "litert" and classifier.model is None
        assert classifier_for(_register(models_dir)) is classifier  # loaded once per process

    def test_loads_keras_when_the_setting_says_so(self, db, models_dir, settings):
        settings.INFERENCE_RUNTIME = "keras"
        version = _register(models_dir)

        classifier = classifier_for(version)

        assert classifier.runtime == "keras"
        assert keras_classifier_for(version) is classifier  # one Keras copy for predictions and heatmaps

    def test_loads_keras_when_the_card_lists_no_litert_file(self, db, models_dir):
        card_path = models_dir / "tiny-v1.card.json"
        card = json.loads(card_path.read_text())
        del card["runtimes"]
        card_path.write_text(json.dumps(card))

        assert classifier_for(_register(models_dir)).runtime == "keras"

    @pytest.mark.parametrize("damage", ["altered", "missing"])
    def test_falls_back_to_keras_and_says_why_when_the_litert_file_is(self, db, models_dir, damage, caplog):
        tflite = models_dir / "tiny-v1.tflite"
        if damage == "altered":
            tflite.write_bytes(tflite.read_bytes()[:-1] + b"\0")
        else:
            tflite.unlink()
        version = _register(models_dir)

        with caplog.at_level(logging.ERROR, logger="classifier.registry"):
            classifier = classifier_for(version)

        assert classifier.runtime == "keras"
        assert "classifying with Keras instead" in caplog.text
        assert ("does not match" in caplog.text) == (damage == "altered")

    def test_heatmaps_get_the_keras_model_beside_the_litert_one(self, db, models_dir):
        from PIL import Image

        version = _register(models_dir)

        keras_classifier = keras_classifier_for(version)

        assert classifier_for(version).runtime == "litert"
        assert keras_classifier.runtime == "keras" and keras_classifier.model is not None
        assert keras_classifier.heatmap_png(Image.new("RGB", (64, 48))).startswith(b"\x89PNG")


class TestPredictionRuntime:
    def _run(self, study, sonographer):
        job = image_upload(study=study, data=png_bytes(), filename="a.png", uploaded_by=sonographer).image.jobs.get()
        return classification_job_run(job_id=job.id)

    def test_the_worker_records_litert_on_the_prediction(self, models_dir, study, sonographer):
        _register(models_dir)

        job = self._run(study, sonographer)

        assert job.status == ClassificationJob.Status.SUCCEEDED
        assert job.prediction.runtime == "litert"

    def test_a_fallback_is_recorded_as_keras(self, models_dir, study, sonographer):
        (models_dir / "tiny-v1.tflite").unlink()
        _register(models_dir)

        assert self._run(study, sonographer).prediction.runtime == "keras"

    def test_the_committed_model_runs_on_litert(self, real_model, study, sonographer):
        assert self._run(study, sonographer).prediction.runtime == "litert"
