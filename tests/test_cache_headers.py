"""No cache keeps patient data: pages and API answers are ``no-store``; image bytes are ``private, no-cache``
(never in a shared cache, and re-checked by the server before every reuse); static files and the
API schema keep their own caching."""

from __future__ import annotations

import pytest
from django.test import Client

from classifier import services as classifier_services
from classifier.ml.inference import ClassifierResult
from classifier.models import ModelVersion
from fetalsite.core.cache_headers import IMAGE_CACHE_CONTROL
from patients import services as patient_services
from tests.images import png_bytes

PLANES = ["fetal_brain", "fetal_thorax", "fetal_abdomen", "fetal_femur"]


@pytest.fixture
def image_with_heatmap(study):
    ModelVersion.objects.create(
        name="tiny", version="1", file_path="tiny.keras", sha256="0" * 64, class_labels=PLANES, input_size=32,
        review_threshold=0.5, is_active=True,
    )  # fmt: skip
    image = patient_services.image_upload(
        study=study, data=png_bytes(seed=1), filename="scan.png", uploaded_by=study.created_by
    ).image
    job = image.jobs.get()
    classifier_services.job_start(job_id=job.id)
    result = ClassifierResult(
        label="fetal_brain",
        confidence=0.9,
        probabilities=dict(zip(PLANES, (0.9, 0.04, 0.03, 0.03), strict=True)),
        needs_review=False,
        inference_ms=12.5,
    )
    classifier_services.prediction_save(job_id=job.id, result=result, heatmap_png=png_bytes(seed=2))
    return image


@pytest.fixture
def page_client(sonographer) -> Client:
    client = Client()
    client.force_login(sonographer)
    return client


class TestPatientDataIsNeverStored:
    def test_a_page(self, page_client, study):
        response = page_client.get(f"/studies/{study.id}/")

        assert response.status_code == 200
        assert response["Cache-Control"] == "no-store"

    def test_the_fragment_a_page_polls(self, page_client, study):
        response = page_client.get(f"/studies/{study.id}/images/", headers={"X-Requested-With": "fetch"})

        assert response.status_code == 200
        assert response["Cache-Control"] == "no-store"

    def test_an_api_detail_and_list(self, api_client, study):
        detail = api_client.get(f"/api/v1/patients/{study.patient_id}/")
        listing = api_client.get("/api/v1/studies/")

        assert detail.status_code == listing.status_code == 200
        assert detail["Cache-Control"] == listing["Cache-Control"] == "no-store"

    def test_an_api_error(self, api_client):
        response = api_client.get("/api/v1/patients/999999/")

        assert response.status_code == 404
        assert response["Cache-Control"] == "no-store"

    def test_the_login_page_and_a_redirect_to_it(self, client):
        login = client.get("/login/")
        redirect = client.get("/")

        assert login.status_code == 200
        assert "no-store" in login["Cache-Control"]  # Django's own never_cache: stricter still
        assert redirect.status_code == 302
        assert redirect["Cache-Control"] == "no-store"


class TestImageBytesArePrivate:
    @pytest.mark.parametrize("variant", ["file", "preview", "thumbnail", "heatmap"])
    def test_image_pages(self, page_client, image_with_heatmap, variant):
        response = page_client.get(f"/images/{image_with_heatmap.id}/{variant}/")

        assert response.status_code == 200
        assert response["Content-Type"] == "image/png"
        assert response["Cache-Control"] == IMAGE_CACHE_CONTROL == "private, no-cache"

    def test_the_api_download(self, api_client, image_with_heatmap):
        response = api_client.get(f"/api/v1/images/{image_with_heatmap.id}/file/")

        assert response.status_code == 200
        assert response["Cache-Control"] == "private, no-cache"


class TestPublicFilesKeepTheirCaching:
    def test_a_static_file(self, client):
        response = client.get("/static/css/app.css")

        assert response.status_code == 200
        assert "no-store" not in response.get("Cache-Control", "")

    def test_the_api_schema_and_docs(self, client, db):
        schema = client.get("/api/schema/")
        docs = client.get("/api/docs/")

        assert schema.status_code == docs.status_code == 200
        assert not schema.has_header("Cache-Control") and not docs.has_header("Cache-Control")

    def test_a_view_that_sets_its_own(self, client, db):
        response = client.get("/health/")

        assert response["Cache-Control"] == "max-age=0, no-cache, no-store, must-revalidate, private"
