"""Heatmaps made when someone first asks: the request service, the render task's service, the study page's heatmap
URL (202 while it is being made, then the PNG), and the whole path through a real Celery worker."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.core.files.storage import default_storage
from django.test import Client
from django.utils import timezone
from PIL import Image

from classifier.models import Prediction
from classifier.services import classification_job_run, heatmap_render, heatmap_request
from patients.services import image_upload
from tests.conftest import wait_for
from tests.images import png_bytes


@pytest.fixture
def prediction(study, sonographer, active_model) -> Prediction:
    image = image_upload(study=study, data=png_bytes(96, 72, seed=3), filename="a.png", uploaded_by=sonographer).image
    return classification_job_run(job_id=image.jobs.get().id).prediction


def sent_heatmap_renders(callbacks) -> int:
    """How many heatmap_render messages the captured on-commit callbacks would queue (not run here)."""
    return sum(
        1 for callback in callbacks if getattr(getattr(callback, "func", None), "__name__", "") == "_heatmap_send"
    )


class TestHeatmapRequest:
    def test_the_first_request_queues_one_render_and_repeats_queue_nothing(
        self, prediction, sonographer, django_capture_on_commit_callbacks
    ):
        with django_capture_on_commit_callbacks() as first:
            heatmap_request(prediction=prediction, requested_by=sonographer)
        with django_capture_on_commit_callbacks() as again:
            heatmap_request(prediction=prediction, requested_by=sonographer)

        assert sent_heatmap_renders(first) == 1 and sent_heatmap_renders(again) == 0
        prediction.refresh_from_db()
        assert prediction.heatmap_requested_at is not None and not prediction.heatmap
        assert prediction.history.count() == 1, "asking for a heatmap is no change to the prediction's history"

    def test_a_request_older_than_the_task_time_limit_is_queued_again(
        self, prediction, sonographer, settings, django_capture_on_commit_callbacks
    ):
        long_ago = timezone.now() - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 1)
        Prediction.objects.filter(id=prediction.id).update(heatmap_requested_at=long_ago)

        with django_capture_on_commit_callbacks() as callbacks:
            heatmap_request(prediction=prediction, requested_by=sonographer)

        assert sent_heatmap_renders(callbacks) == 1
        prediction.refresh_from_db()
        assert prediction.heatmap_requested_at > long_ago

    def test_a_made_heatmap_is_not_queued_again(self, prediction, sonographer, django_capture_on_commit_callbacks):
        heatmap_render(prediction_id=prediction.id)
        with django_capture_on_commit_callbacks() as callbacks:
            asked = heatmap_request(prediction=prediction, requested_by=sonographer)
        assert sent_heatmap_renders(callbacks) == 0 and asked.heatmap

    def test_another_clinics_user_may_not_ask(self, prediction, south_sonographer, django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks() as callbacks, pytest.raises(PermissionDenied):
            heatmap_request(prediction=prediction, requested_by=south_sonographer)
        assert sent_heatmap_renders(callbacks) == 0
        assert Prediction.objects.get(id=prediction.id).heatmap_requested_at is None


class TestHeatmapRender:
    def test_stores_the_grad_cam_overlay_once(self, prediction):
        made = heatmap_render(prediction_id=prediction.id)

        assert made.heatmap.name.startswith("heatmaps/") and default_storage.exists(made.heatmap.name)
        with made.heatmap.open("rb") as handle, Image.open(io.BytesIO(handle.read())) as overlay:
            assert overlay.format == "PNG" and overlay.size == (96, 72)
        # A redelivered or repeated render finds it made: the same file, nothing more stored.
        assert heatmap_render(prediction_id=prediction.id).heatmap.name == made.heatmap.name
        assert len(default_storage.listdir("heatmaps")[1]) == 1
        assert Prediction.objects.get(id=prediction.id).history.count() == 1

    def test_a_missing_prediction_is_ignored(self, db):
        assert heatmap_render(prediction_id=123_456_789) is None


@pytest.fixture
def page_client(sonographer) -> Client:
    client = Client()
    client.force_login(sonographer)
    return client


class TestHeatmapPage:
    def test_202_while_it_is_made_then_the_png(self, page_client, prediction, django_capture_on_commit_callbacks):
        url = f"/images/{prediction.job.image_id}/heatmap/"
        with django_capture_on_commit_callbacks() as callbacks:
            first = page_client.get(url)
            second = page_client.get(url)

        for response in (first, second):
            assert response.status_code == 202
            assert response["Retry-After"] == "1" and response["Cache-Control"] == "no-store"
            assert response.json()["status"] == "preparing"
        assert sent_heatmap_renders(callbacks) == 1, "asking twice queues one render"

        heatmap_render(prediction_id=prediction.id)
        ready = page_client.get(url)
        assert ready.status_code == 200 and ready["Content-Type"] == "image/png"
        assert ready["Cache-Control"] == "private, no-cache"
        assert b"".join(ready.streaming_content).startswith(b"\x89PNG")

    def test_404_for_an_image_without_a_prediction(self, page_client, study, sonographer, active_model):
        image = image_upload(study=study, data=png_bytes(), filename="q.png", uploaded_by=sonographer).image
        assert page_client.get(f"/images/{image.id}/heatmap/").status_code == 404

    def test_404_for_another_clinics_image(self, prediction, south_sonographer):
        client = Client()
        client.force_login(south_sonographer)
        assert client.get(f"/images/{prediction.job.image_id}/heatmap/").status_code == 404
        assert Prediction.objects.get(id=prediction.id).heatmap_requested_at is None


@pytest.mark.e2e
class TestHeatmapThroughTheWorker:
    def test_the_first_request_is_answered_202_and_the_worker_makes_it(
        self, celery_worker, active_model, study, sonographer
    ):
        image = image_upload(study=study, data=png_bytes(seed=5), filename="w.png", uploaded_by=sonographer).image
        wait_for(lambda: Prediction.objects.filter(job__image=image).first())
        client = Client()
        client.force_login(sonographer)
        url = f"/images/{image.id}/heatmap/"

        assert client.get(url).status_code == 202
        ready = wait_for(lambda: (response := client.get(url)).status_code == 200 and response)

        assert b"".join(ready.streaming_content).startswith(b"\x89PNG")
        assert len(default_storage.listdir("heatmaps")[1]) == 1
