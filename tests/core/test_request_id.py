"""One request id from the upload through its job to the webhook (fetalsite/core/request_id.py): the middleware
keeps a well-formed X-Request-ID and replaces any other, the job row stores it, the worker's JSON log lines for
the job carry it, and the webhook POST sends it."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils.module_loading import import_string

from classifier.models import ClassificationJob, WebhookDelivery, WebhookEndpoint
from classifier.webhooks import webhook_endpoint_save
from fetalsite.core.request_id import RequestIdLogFilter, request_id_scope
from tests.api.webhook_receiver import Receiver, serving
from tests.classifier.worker_processes import json_log, private_broker, worker_env, worker_process
from tests.conftest import wait_for
from tests.images import png_bytes

NEW_ID = re.compile(r"^[0-9a-f]{32}$")


class TestMiddleware:
    def test_a_well_formed_id_is_kept_and_echoed(self, client):
        response = client.get("/login/", HTTP_X_REQUEST_ID="lb-7f3a:01.abc_123")
        assert response["X-Request-ID"] == "lb-7f3a:01.abc_123"

    @pytest.mark.parametrize("sent", ["", "two words", "x" * 65, 'quo"te', "line\nbreak", "abc123\n", "ümlaut", "a;b"])
    def test_an_invalid_id_is_replaced_not_echoed(self, client, sent):
        response = client.get("/login/", HTTP_X_REQUEST_ID=sent)
        assert NEW_ID.match(response["X-Request-ID"]) and response["X-Request-ID"] != sent

    def test_without_one_each_request_gets_its_own(self, client):
        ids = {client.get("/login/")["X-Request-ID"] for _ in range(2)}
        assert len(ids) == 2 and all(NEW_ID.match(value) for value in ids)


def test_json_log_lines_carry_the_request_and_job_ids(settings):
    config = dict(settings.LOGGING["formatters"]["json"])
    formatter = import_string(config.pop("()"))(**config)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(RequestIdLogFilter())
    logger = logging.getLogger("tests.request_id")
    logger.addHandler(handler)
    try:
        with request_id_scope("abc123", job_id=42):
            logger.warning("inside %s", "the job")
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert {k: inside[k] for k in ("level", "logger", "message", "request_id", "job_id")} == {
        "level": "WARNING",
        "logger": "tests.request_id",
        "message": "inside the job",
        "request_id": "abc123",
        "job_id": 42,
    }
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", inside["timestamp"])
    assert (outside["request_id"], outside["job_id"]) == (None, None)


def _upload(api_client, study, request_id: str | None):
    return api_client.post(
        f"/api/v1/studies/{study.id}/images/",
        {"file": SimpleUploadedFile("head.png", png_bytes(seed=5), content_type="image/png")},
        format="multipart",
        **({} if request_id is None else {"HTTP_X_REQUEST_ID": request_id}),
    )


@pytest.mark.parametrize("sent", [None, "not valid!"])
def test_a_generated_id_is_the_one_the_answer_and_the_job_carry(api_client, study, sent):
    """Two middlewares read the id (this one and the access log's): they must not make two."""
    response = _upload(api_client, study, sent)
    job = ClassificationJob.objects.get(image_id=response.json()["id"])
    assert NEW_ID.match(response["X-Request-ID"]) and job.request_id == response["X-Request-ID"]


@pytest.mark.e2e
def test_the_uploads_request_id_reaches_the_worker_log_and_the_webhook(
    transactional_db, active_model, study, api_client, settings, media_root, tmp_path
):
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    env = worker_env(media_root, WEBHOOK_ALLOW_HTTP="1", WEBHOOK_ALLOWED_NETWORKS="127.0.0.1/32")
    log = tmp_path / "worker.log"
    # One worker without -Q, as make run starts it: it consumes every queue, the webhooks' too.
    with serving(Receiver()) as receiver, private_broker(), worker_process(env, name="all", log=log):
        # Only the prediction's event: a brain image's measurement sends one of its own, later, not awaited here.
        endpoint = WebhookEndpoint(
            clinic=study.patient.clinic, url=receiver.url, secret="s" * 32, events=["prediction.created"]
        )
        webhook_endpoint_save(endpoint=endpoint)
        response = _upload(api_client, study, "abc123")
        assert response.status_code == 202, response.content
        assert response["X-Request-ID"] == "abc123"
        job = ClassificationJob.objects.get(image_id=response.json()["id"])
        assert job.request_id == "abc123"
        wait_for(lambda: WebhookDelivery.objects.filter(status=WebhookDelivery.Status.SUCCEEDED).exists(), timeout=120)

    assert receiver.received[0]["headers"]["X-Request-ID"] == "abc123"
    assert WebhookDelivery.objects.get().request_id == "abc123"
    lines = json_log(log)
    job_lines = [line for line in lines if line["job_id"] == job.id]
    assert job_lines and all(line["request_id"] == "abc123" for line in job_lines), job_lines
    assert any(line["message"] == f"Job {job.id}: SUCCEEDED" for line in job_lines)
    delivery_lines = [line for line in lines if line["message"].startswith("Webhook delivery ")]
    assert [line["request_id"] for line in delivery_lines] == ["abc123"]
    assert all({"timestamp", "level", "logger", "message", "request_id", "job_id"} <= set(line) for line in lines)
