"""API fixtures: clients per role and records made through the real services.

Predictions here are written by the real ``prediction_save`` service with chosen numbers, so the
API can be tested without TensorFlow; the webhook round trip runs the real worker and tiny model."""

from __future__ import annotations

import pytest

from classifier import services as classifier_services
from classifier.ml.inference import ClassifierResult
from classifier.models import ModelVersion
from patients import services as patient_services
from tests.conftest import _token_client
from tests.factories import StudyFactory
from tests.images import png_bytes


@pytest.fixture
def clinician_client(clinician):
    return _token_client(clinician)


@pytest.fixture
def sonographer_client(sonographer):
    return _token_client(sonographer)


def upload(study, *, seed: int = 0, user=None):
    return patient_services.image_upload(
        study=study, data=png_bytes(seed=seed), filename=f"scan-{seed}.png", uploaded_by=user or study.created_by
    ).image


def classify(
    image,
    *,
    label: str = "fetal_brain",
    confidence: float = 0.9,
    needs_review: bool = False,
    heatmap_png: bytes | None = None,
):
    """Run the image's queued job through the real services with a chosen result."""
    job = image.jobs.get()
    classifier_services.job_start(job_id=job.id)
    others = (1 - confidence) / 3
    probabilities = {
        name: (confidence if name == label else others)
        for name in ("fetal_brain", "fetal_thorax", "fetal_abdomen", "fetal_femur")
    }
    result = ClassifierResult(
        label=label, confidence=confidence, probabilities=probabilities, needs_review=needs_review, inference_ms=12.5
    )
    classifier_services.prediction_save(job_id=job.id, result=result, heatmap_png=heatmap_png)
    return image.jobs.get().prediction


@pytest.fixture
def model_version(db):
    """A registered, active version without loading TensorFlow (the API only reads the row)."""
    return ModelVersion.objects.create(
        name="fetalnet",
        version="1.0",
        file_path="fetalnet-1.0.keras",
        sha256="0" * 64,
        class_labels=["fetal_brain", "fetal_thorax", "fetal_abdomen", "fetal_femur"],
        input_size=224,
        review_threshold=0.6,
        metrics={"test": {"accuracy": 0.9}},
        is_active=True,
    )


@pytest.fixture
def image(study, model_version):
    return upload(study)


@pytest.fixture
def classified_image(image):
    classify(image)
    return image


@pytest.fixture
def south_study(south_sonographer):
    return StudyFactory(patient__clinic=south_sonographer.clinic, created_by=south_sonographer)


@pytest.fixture
def south_image(south_study, model_version):
    image = upload(south_study, seed=99)
    classify(image)
    return image
