"""End to end through the real Redis broker and a real Celery worker thread."""

import shutil

import pytest
from celery.signals import task_postrun
from django.core.files.uploadedfile import SimpleUploadedFile

from classifier.models import ClassificationJob, Prediction
from classifier.services import model_version_register
from classifier.tasks import classify_image
from patients.models import UltrasoundImage
from patients.services import image_upload
from tests.conftest import wait_for
from tests.images import png_bytes

pytestmark = pytest.mark.e2e


def finished_job(job_id: int):
    job = ClassificationJob.objects.get(id=job_id)
    return job if job.is_finished else None


class TestClassifyImageTask:
    def test_api_upload_is_classified_by_the_worker(self, celery_worker, active_model, api_client, study):
        response = api_client.post(
            f"/api/v1/studies/{study.id}/images/",
            {"file": SimpleUploadedFile("scan.png", png_bytes())},
            format="multipart",
        )
        assert response.status_code == 202, response.content
        job = wait_for(lambda: finished_job(response.json()["job"]["id"]))
        assert job.status == ClassificationJob.Status.SUCCEEDED, job.error

        detail = api_client.get(f"/api/v1/images/{response.json()['id']}/").json()
        assert detail["job"]["status"] == "SUCCEEDED"
        assert detail["prediction"]["model_version"] == "tiny:1"
        assert set(detail["prediction"]["probabilities"]) == {
            "fetal_brain",
            "fetal_thorax",
            "fetal_abdomen",
            "fetal_femur",
        }

    def test_failing_inference_is_retried_then_failed_and_nothing_is_lost(
        self, celery_worker, settings, tiny_model_dir, tmp_path, study, sonographer
    ):
        settings.MODELS_DIR = tmp_path
        shutil.copy(tiny_model_dir / "tiny-v1.keras", tmp_path / "tiny-v1.keras")
        shutil.copy(tiny_model_dir / "tiny-v1.card.json", tmp_path / "tiny-v1.card.json")
        model_version_register(card_path=tmp_path / "tiny-v1.card.json", activate=True)
        (tmp_path / "tiny-v1.keras").write_bytes(b"tampered")  # every load now raises

        image = image_upload(study=study, data=png_bytes(), filename="a.png", uploaded_by=sonographer).image
        job = wait_for(lambda: finished_job(image.jobs.get().id))

        assert job.status == ClassificationJob.Status.FAILED
        assert job.attempts == settings.CLASSIFY_MAX_RETRIES + 1
        assert "ModelIntegrityError" in job.error and "sha256" in job.error
        assert UltrasoundImage.objects.filter(id=image.id).exists() and image.file.storage.exists(image.file.name)
        assert not Prediction.objects.exists()

    def test_a_duplicated_message_leaves_one_prediction(self, celery_worker, active_model, study, sonographer):
        runs = []

        def count_run(sender=None, kwargs=None, **_):
            if sender.name == classify_image.name and kwargs == {"job_id": job_id}:
                runs.append(1)

        task_postrun.connect(count_run)
        try:
            image = image_upload(study=study, data=png_bytes(), filename="a.png", uploaded_by=sonographer).image
            job_id = image.jobs.get().id
            classify_image.delay(job_id=job_id)
            classify_image.delay(job_id=job_id)
            # The upload's message and both duplicates have each been through the worker.
            wait_for(lambda: len(runs) >= 3)
        finally:
            task_postrun.disconnect(count_run)
        assert len(runs) == 3 and finished_job(job_id)
        assert Prediction.objects.filter(job_id=job_id).count() == 1
        assert ClassificationJob.objects.get(id=job_id).attempts == 1
