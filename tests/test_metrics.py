"""/metrics: what Prometheus reads equals what the database holds, from a bounded number of queries, and only a
scraper with the token or from an allowed network gets it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from biometry.models import MeasurementJob
from classifier import services as classifier_services
from classifier.labels import PLANE_LABELS
from classifier.ml.inference import ClassifierResult
from classifier.models import ClassificationJob, ModelVersion, Prediction, WebhookDelivery, WebhookEndpoint
from fetalsite.core.errors import ApplicationError
from fetalsite.metrics.models import UploadRefusal
from fetalsite.metrics_endpoint import INFERENCE_BUCKETS, QUEUE_WAIT_BUCKETS
from patients import services as patient_services
from tests.images import png_bytes

TOKEN = "scrape-0f6c2a9d41b7e3a8c5d2"
_seeds = iter(range(1, 100_000))


@pytest.fixture
def model_version(db):
    return ModelVersion.objects.create(
        name="fetalnet", version="3.1", file_path="fetalnet-3.1.keras", sha256="0" * 64, class_labels=PLANE_LABELS,
        input_size=224, review_threshold=0.6, is_active=True,
    )  # fmt: skip


@pytest.fixture
def token(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_NETWORKS = []
    return TOKEN


def _scrape(client) -> dict:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(response.content.decode())}


def _values(family, sample_name: str | None = None) -> dict[tuple, float]:
    """{(label value, ...): value} of a family's samples named ``sample_name`` (the family's own by default)."""
    name = sample_name or family.name
    return {tuple(s.labels.values()): s.value for s in family.samples if s.name == name}


def _upload(study):
    return patient_services.image_upload(
        study=study, data=png_bytes(seed=next(_seeds)), filename="scan.png", uploaded_by=study.created_by
    ).image


def _started(study, *, wait_s: float) -> ClassificationJob:
    """A job a worker started ``wait_s`` seconds after it was queued."""
    job = _upload(study).jobs.get()
    classifier_services.job_start(job_id=job.id)
    queued_at = timezone.now() - timedelta(minutes=5)
    ClassificationJob.objects.filter(id=job.id).update(
        queued_at=queued_at, started_at=queued_at + timedelta(seconds=wait_s)
    )
    return job


def _predicted(study, *, label: str, inference_ms: float, runtime: str, wait_s: float = 1.0) -> Prediction:
    job = _started(study, wait_s=wait_s)
    others = {name: 0.1 / 3 for name in PLANE_LABELS if name != label}
    result = ClassifierResult(
        label=label, confidence=0.9, probabilities={label: 0.9, **others}, needs_review=False,
        inference_ms=inference_ms, runtime=runtime,
    )  # fmt: skip
    classifier_services.prediction_save(job_id=job.id, result=result)
    return Prediction.objects.get(job=job)


def _failed(study) -> ClassificationJob:
    job = _upload(study).jobs.get()
    classifier_services.job_mark_failed(job_id=job.id, reason="test: no worker")
    return job


def _refused_upload(api_client, study, content: bytes) -> dict:
    files = {"file": SimpleUploadedFile("scan.png", content, content_type="image/png")}
    response = api_client.post(f"/api/v1/studies/{study.id}/images/", files, format="multipart")
    assert response.status_code == 400
    return response.json()


def _cumulative(values: list[float], bounds: tuple[float, ...]) -> list[float]:
    return [sum(value <= bound for value in values) for bound in bounds] + [len(values)]


def _without_le(labels: dict) -> tuple:
    return tuple(value for name, value in labels.items() if name != "le")


def _histogram(family, labels: tuple = ()) -> tuple[list[float], float, float]:
    bucket_name = family.name + "_bucket"
    buckets = [s for s in family.samples if s.name == bucket_name and _without_le(s.labels) == labels]
    sums = _values(family, family.name + "_sum")
    counts = _values(family, family.name + "_count")
    return [s.value for s in buckets], sums[labels], counts[labels]


@pytest.mark.django_db
class TestMetricsContent:
    def test_jobs_predictions_waits_and_inference_times_are_the_databases(
        self, client, token, model_version, study, clinician
    ):
        _upload(study)  # queued
        _upload(study)
        _started(study, wait_s=0.02)  # running
        brain = _predicted(study, label="fetal_brain", inference_ms=8, runtime="litert", wait_s=0.3)
        thorax = _predicted(study, label="fetal_brain", inference_ms=40, runtime="keras", wait_s=4)
        _predicted(study, label="fetal_femur", inference_ms=120, runtime="keras", wait_s=45)
        _failed(study)  # never started: no queue wait
        classifier_services.image_review(image=brain.job.image, reviewed_by=clinician, label="fetal_brain")
        classifier_services.image_review(image=thorax.job.image, reviewed_by=clinician, label="fetal_thorax")

        families = _scrape(client)

        jobs = _values(families["fetalsite_classification_jobs"])
        assert jobs == {("QUEUED",): 2, ("RUNNING",): 1, ("SUCCEEDED",): 3, ("FAILED",): 1}
        predictions = _values(families["fetalsite_predictions"])
        assert {key: n for key, n in predictions.items() if n} == {
            ("fetal_brain", "confirmed"): 1,
            ("fetal_brain", "corrected"): 1,
            ("fetal_femur", "suggested"): 1,
        }
        assert len(predictions) == len(PLANE_LABELS) * len(Prediction.ReviewState.values)  # zeros stay visible
        buckets, total, count = _histogram(families["fetalsite_job_queue_wait_seconds"])
        waits = [0.02, 0.3, 4, 45]
        assert buckets == _cumulative(waits, QUEUE_WAIT_BUCKETS)
        assert (total, count) == (pytest.approx(sum(waits)), len(waits))
        inference = families["fetalsite_inference_seconds"]
        buckets, total, count = _histogram(inference, ("keras",))
        assert buckets == _cumulative([0.04, 0.12], INFERENCE_BUCKETS)
        assert (total, count) == (pytest.approx(0.16), 2)
        buckets, total, count = _histogram(inference, ("litert",))
        assert buckets == _cumulative([0.008], INFERENCE_BUCKETS)
        assert (total, count) == (pytest.approx(0.008), 1)

    def test_webhook_deliveries_by_outcome(self, client, token, north):
        endpoint = WebhookEndpoint.objects.create(clinic=north, url="https://north.example.org/hook")
        statuses = ["SUCCEEDED", "SUCCEEDED", "FAILED", "RETRYING", "PENDING"]
        for status in statuses:
            WebhookDelivery.objects.create(endpoint=endpoint, event_type="job.failed", payload={}, status=status)

        deliveries = _values(_scrape(client)["fetalsite_webhook_deliveries"])

        assert deliveries == {("PENDING",): 1, ("SENDING",): 0, ("RETRYING",): 1, ("SUCCEEDED",): 2, ("FAILED",): 1}

    def test_measurement_jobs_by_status(self, client, token, study):
        images, now = [_upload(study) for _ in range(3)], timezone.now()
        for image, status in zip(images, ["QUEUED", "SUCCEEDED", "FAILED"], strict=True):
            MeasurementJob.objects.create(image=image, model_version="fetal-head-v1", status=status, queued_at=now)

        jobs = _values(_scrape(client)["fetalsite_measurement_jobs"])

        assert jobs == {("QUEUED",): 1, ("RUNNING",): 0, ("SUCCEEDED",): 1, ("FAILED",): 1}

    def test_build_info_names_the_version_and_the_active_model(self, client, token, model_version, settings):
        info = _scrape(client)["fetalsite_build_info"].samples  # an info metric: a gauge of 1 in the text format
        assert [sample.name for sample in info] == ["fetalsite_build_info"]
        assert info[0].value == 1
        assert info[0].labels == {
            "version": "0.1.0",
            "api_version": settings.SPECTACULAR_SETTINGS["VERSION"],
            "model_name": "fetalnet",
            "model_version": "3.1",
        }

    def test_queries_do_not_grow_with_the_rows(self, client, token, model_version, study):
        _predicted(study, label="fetal_brain", inference_ms=20, runtime="keras")
        with CaptureQueriesContext(connection) as few:
            _scrape(client)
        for index in range(6):
            _predicted(
                study, label=PLANE_LABELS[index % 4], inference_ms=20 + index, runtime=("keras", "litert")[index % 2]
            )
            _upload(study)
        UploadRefusal.objects.create(reason="not_an_image", count=3, last_refused_at=timezone.now())

        with CaptureQueriesContext(connection) as many:
            _scrape(client)

        assert len(many) == len(few) <= 9  # one query per metric family


@pytest.mark.django_db
class TestUploadRefusals:
    def test_refused_api_uploads_are_counted_by_their_code(self, client, token, model_version, study, api_client):
        for content in (b"not an image", b"still not an image", b""):
            _refused_upload(api_client, study, content)
        files = [SimpleUploadedFile(f"s{n}.png", data, content_type="image/png") for n, data in enumerate(
            [png_bytes(seed=5), b"text"])]  # fmt: skip
        response = api_client.post(f"/api/v1/studies/{study.id}/images/", {"file": files}, format="multipart")
        assert response.status_code == 400  # one bad file refuses the whole upload

        refusals = _values(_scrape(client)["fetalsite_upload_refusals"], "fetalsite_upload_refusals_total")

        assert refusals == {("not_an_image",): 3, ("empty",): 1}

    def test_a_refused_dicom_instance_is_counted_as_the_receivers_call_it(
        self, client, token, model_version, north, sonographer
    ):
        with pytest.raises(ApplicationError) as refused:
            patient_services.dicom_instance_receive(
                clinic=north, data=b"DICM? no", received_by=sonographer, source="c-store"
            )

        refusals = _values(_scrape(client)["fetalsite_upload_refusals"], "fetalsite_upload_refusals_total")

        assert refusals == {(refused.value.code,): 1}

    def test_the_study_page_and_a_signed_off_study_are_counted_too(
        self, client, token, model_version, study, sonographer, clinician, api_client
    ):
        client.force_login(sonographer)
        page = client.post(
            f"/studies/{study.id}/upload/",
            {"file": SimpleUploadedFile("x.png", b"text")},
            HTTP_X_REQUESTED_WITH="fetch",  # the study page's script
        )
        assert page.status_code == 400
        patient_services.study_sign_off(study=study, signed_by=clinician, acknowledged=True)
        files = {"file": SimpleUploadedFile("scan.png", png_bytes(seed=9), content_type="image/png")}
        assert api_client.post(f"/api/v1/studies/{study.id}/images/", files, format="multipart").status_code == 409

        refusals = _values(_scrape(client)["fetalsite_upload_refusals"], "fetalsite_upload_refusals_total")

        assert refusals == {("not_an_image",): 1, ("study_signed_off",): 1}

    def test_an_accepted_upload_counts_nothing(self, client, token, model_version, study, api_client):
        files = {"file": SimpleUploadedFile("scan.png", png_bytes(seed=7), content_type="image/png")}
        assert api_client.post(f"/api/v1/studies/{study.id}/images/", files, format="multipart").status_code == 202

        assert not UploadRefusal.objects.exists()
        assert _values(_scrape(client)["fetalsite_upload_refusals"], "fetalsite_upload_refusals_total") == {}


@pytest.mark.django_db
class TestMetricsAccess:
    def test_nothing_configured_answers_404_even_to_a_bearer(self, client, settings):
        settings.METRICS_TOKEN, settings.METRICS_ALLOWED_NETWORKS = "", []
        assert client.get("/metrics").status_code == 404
        assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404

    @pytest.mark.parametrize(
        "authorization",
        ["", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Token {TOKEN}", f"Basic {TOKEN}", TOKEN, "Bearer"],
    )
    def test_a_missing_or_wrong_token_is_refused(self, client, token, authorization):
        headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
        response = client.get("/metrics", **headers)
        assert response.status_code == 404
        assert b"fetalsite_" not in response.content

    def test_the_token_lets_a_scraper_in_and_only_for_reading(self, client, token):
        assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
        assert client.get("/metrics", HTTP_AUTHORIZATION=f"bearer {TOKEN}").status_code == 200
        assert client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405
        assert client.post("/metrics").status_code == 404

    def test_an_allowed_network_needs_no_token(self, client, settings):
        settings.METRICS_TOKEN, settings.METRICS_ALLOWED_NETWORKS = "", ["10.20.0.0/16", "fd00::/8"]
        assert client.get("/metrics", REMOTE_ADDR="10.20.3.4").status_code == 200
        assert client.get("/metrics", REMOTE_ADDR="::ffff:10.20.3.4").status_code == 200  # dual-stack listener
        assert client.get("/metrics", REMOTE_ADDR="fd12::7").status_code == 200
        assert client.get("/metrics", REMOTE_ADDR="10.21.0.1").status_code == 404
        assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 404

    def test_behind_a_proxy_the_network_is_the_clients_not_a_forged_one(self, client, settings):
        settings.METRICS_TOKEN, settings.METRICS_ALLOWED_NETWORKS = "", ["10.20.0.0/16"]
        settings.TRUSTED_PROXY_COUNT = 1
        proxy = {"REMOTE_ADDR": "192.0.2.10"}
        assert client.get("/metrics", HTTP_X_FORWARDED_FOR="10.20.3.4", **proxy).status_code == 200
        forged = client.get("/metrics", HTTP_X_FORWARDED_FOR="10.20.3.4, 203.0.113.9", **proxy)
        assert forged.status_code == 404
