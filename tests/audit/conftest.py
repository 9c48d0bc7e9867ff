"""Records to read: one North patient with a study, an image, its job, prediction and head measurement (no
TensorFlow)."""

from __future__ import annotations

import pytest

from classifier import services as classifier_services
from classifier.labels import PLANE_LABELS
from classifier.ml.inference import ClassifierResult
from classifier.models import ModelVersion
from patients.services import image_upload
from tests.biometry.conftest import card_without_model, measured
from tests.images import png_bytes


@pytest.fixture
def north_records(study, sonographer, settings, tmp_path):
    # A registry row is enough: the prediction is saved directly, as the worker would save it.
    ModelVersion.objects.create(
        name="tiny",
        version="1",
        file_path="tiny.keras",
        sha256="0" * 64,
        class_labels=PLANE_LABELS,
        input_size=32,
        review_threshold=0.5,
        is_active=True,
    )
    image = image_upload(study=study, data=png_bytes(), filename="n.png", uploaded_by=sonographer).image
    job = image.jobs.get()
    classifier_services.job_start(job_id=job.id)
    probabilities = dict.fromkeys(PLANE_LABELS, 0.1)
    probabilities[PLANE_LABELS[0]] = 0.7
    result = ClassifierResult(
        label=PLANE_LABELS[0], confidence=0.7, probabilities=probabilities, needs_review=False, inference_ms=3
    )
    settings.BIOMETRY_MODEL_CARD = card_without_model(tmp_path)  # the brain plane's measurement job is queued
    classifier_services.prediction_save(job_id=job.id, result=result, heatmap_png=png_bytes(seed=9))
    job.refresh_from_db()
    return {
        "patient_id": study.patient_id,
        "study_id": study.id,
        "image_id": image.id,
        "job_id": job.id,
        "prediction_id": job.prediction.id,
        "measurement_id": measured(image).id,  # as the measure worker saves it
    }
