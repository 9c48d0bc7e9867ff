"""Biometry fixtures: a small real segmentation model (untrained) configured as BIOMETRY_MODEL_CARD, and brain-plane
images classified through the real services (tests/api/conftest.py's ``upload`` and ``classify``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from biometry.ml.ellipse import Ellipse, ellipse_fit
from biometry.ml.segmentation import REQUIRED_KEYS, HeadFinding, build_untrained_segmenter_files
from tests.api.conftest import classify, model_version, upload  # noqa: F401 - model_version is a fixture

SEGMENTER_NAME = "fetal-head-test-v1"  # HeadSegmenter.name: "<card name>-v<version>"


@pytest.fixture(scope="session")
def segmenter_card(tmp_path_factory):
    return build_untrained_segmenter_files(tmp_path_factory.mktemp("segmenter"), name="fetal-head-test")


@pytest.fixture
def measuring(settings, segmenter_card):
    """The test segmenter is the configured one."""
    settings.BIOMETRY_MODEL_CARD = segmenter_card
    return segmenter_card


def card_without_model(directory, *, name: str = "fetal-head-test") -> Path:
    """A segmentation card naming a model (``<name>-v1``) whose file is absent: enough to queue measurement jobs
    (the card names the model) for tests that save measurements themselves (``measured``) and never load the
    model, without building one."""
    card = {key: None for key in REQUIRED_KEYS} | {"name": name, "version": "1", "file": "absent.keras"}
    path = Path(directory) / f"{name}-v1.card.json"
    path.write_text(json.dumps(card))
    return path


def brain_image(study, *, seed: int = 0, pixel_size_mm: float | None = None, needs_review: bool = False):
    """An uploaded still the (chosen) prediction calls a brain plane; its measurement job is queued."""
    image = upload(study, seed=seed)
    if pixel_size_mm is not None:
        image.pixel_size_mm, image.pixel_size_source = pixel_size_mm, "upload"
        image.save(update_fields=["pixel_size_mm", "pixel_size_source"])
    classify(image, label="fetal_brain", needs_review=needs_review)
    return image


def drawn_head(*, cx: float = 32.0, cy: float = 24.0, a: float = 20.0, b: float = 15.0, angle: float = 0.3):
    """What the segmenter would report for a skull mask drawn as this ellipse on a 64x48 image: the real ellipse
    fit on the drawn mask (the network alone is left out, as tests/api's ``classify`` leaves out the classifier)."""
    mask = Ellipse(cx, cy, a, b, angle).raster((48, 64))
    return HeadFinding(fit=ellipse_fit(mask, min_area_px=100), inference_ms=12.0, total_ms=15.0)


def empty_head() -> HeadFinding:
    import numpy as np

    return HeadFinding(fit=ellipse_fit(np.zeros((48, 64), bool)), inference_ms=11.0, total_ms=13.0)


def measured(image, finding: HeadFinding | None = None):
    """Run the image's queued measurement job through the real services with this finding."""
    from biometry import services

    job = image.measurement_jobs.get()
    services.measurement_job_start(job_id=job.id)
    services.measurement_save(job_id=job.id, finding=finding or drawn_head(), runtime="keras")
    return image.measurements.get()
