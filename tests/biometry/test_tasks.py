"""biometry.tasks.measure_image: the real (untrained) segmenter on a real image, called in-process; one test
through the real broker and a Celery worker."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta

import pytest
from django.utils import timezone

from biometry.models import Measurement, MeasurementJob
from biometry.services import measurement_jobs_requeue_stale
from biometry.tasks import measure_image, requeue_stale_measurement_jobs
from tests.biometry.conftest import SEGMENTER_NAME, brain_image
from tests.conftest import wait_for

pytestmark = pytest.mark.usefixtures("measuring", "model_version")


def _job(image) -> MeasurementJob:
    return image.measurement_jobs.get()


class TestMeasureImage:
    def test_the_task_stores_the_segmenters_measurement(self, study):
        image = brain_image(study, pixel_size_mm=0.3)
        job = _job(image)

        measure_image(job_id=job.id)

        job.refresh_from_db()
        assert (job.status, job.attempts, job.error) == (MeasurementJob.Status.SUCCEEDED, 1, "")
        measurement = job.measurement
        assert (measurement.image_id, measurement.runtime) == (image.id, "keras")
        assert measurement.inference_ms > 0 and measurement.total_ms >= measurement.inference_ms
        assert (measurement.model_ellipse is None) == ("empty" in measurement.flags)
        assert measurement.needs_review == bool(measurement.flags)
        assert measurement.pixel_size_mm == 0.3 and measurement.review_state == "suggested"

    def test_a_redelivered_message_does_nothing(self, study):
        job = _job(brain_image(study))
        measure_image(job_id=job.id)
        measure_image(job_id=job.id)
        assert Measurement.objects.filter(job=job).count() == 1
        assert MeasurementJob.objects.get(id=job.id).attempts == 1

    def test_a_missing_job_is_ignored(self, db):
        measure_image(job_id=987_654_321)
        assert not Measurement.objects.exists()

    def test_a_broken_model_is_retried_then_the_job_fails_saying_why(self, study, settings, segmenter_card, tmp_path):
        for path in segmenter_card.parent.iterdir():
            shutil.copy(path, tmp_path / path.name)
        card = tmp_path / segmenter_card.name
        (tmp_path / json.loads(card.read_text())["file"]).write_bytes(b"tampered")
        settings.BIOMETRY_MODEL_CARD = card
        settings.MEASURE_MAX_RETRIES = 1
        job = _job(brain_image(study))

        for _ in range(settings.MEASURE_MAX_RETRIES + 1):  # each retry's message, as the broker would bring it
            measure_image(job_id=job.id)

        job.refresh_from_db()
        assert (job.status, job.attempts) == (MeasurementJob.Status.FAILED, 2)
        assert "ModelIntegrityError" in job.error and "sha256" in job.error
        assert not Measurement.objects.exists()

    def test_a_job_for_another_model_than_the_configured_one_fails_saying_so(self, study):
        job = _job(brain_image(study))
        MeasurementJob.objects.filter(id=job.id).update(model_version="fetal-head-v0")
        measure_image(job_id=job.id)
        job.refresh_from_db()
        assert job.status == MeasurementJob.Status.FAILED and SEGMENTER_NAME in job.error


class TestSweeper:
    def test_an_unsent_or_abandoned_job_is_sent_again(self, study, settings):
        unsent = _job(brain_image(study, seed=1))
        abandoned = _job(brain_image(study, seed=2))
        fresh = _job(brain_image(study, seed=3))
        long_ago = timezone.now() - timedelta(hours=1)
        MeasurementJob.objects.filter(id=unsent.id).update(queued_at=long_ago)
        MeasurementJob.objects.filter(id=abandoned.id).update(
            status=MeasurementJob.Status.RUNNING, started_at=long_ago, celery_task_id="lost"
        )

        assert measurement_jobs_requeue_stale() == [unsent.id, abandoned.id]
        assert MeasurementJob.objects.get(id=unsent.id).celery_task_id  # published to the real broker
        assert MeasurementJob.objects.get(id=fresh.id).celery_task_id == ""
        requeue_stale_measurement_jobs()  # the beat task runs the same service


@pytest.mark.e2e
class TestThroughTheWorker:
    def test_a_brain_prediction_is_measured_by_the_worker(self, celery_worker, study):
        image = brain_image(study, pixel_size_mm=0.3)  # committed at once: the job is published on commit

        job = wait_for(lambda: MeasurementJob.objects.filter(image=image, status="SUCCEEDED").first())

        assert job.celery_task_id and job.measurement.runtime == "keras"


class TestRegistry:
    def test_the_segmenter_is_loaded_once_and_again_when_the_card_changes(self, settings, segmenter_card, tmp_path):
        from biometry.registry import segmenter, segmenter_name

        first = segmenter()
        assert segmenter() is first and first.name == segmenter_name() == SEGMENTER_NAME

        for path in segmenter_card.parent.iterdir():
            shutil.copy(path, tmp_path / path.name)
        settings.BIOMETRY_MODEL_CARD = tmp_path / segmenter_card.name
        assert segmenter() is not first and segmenter().name == SEGMENTER_NAME
