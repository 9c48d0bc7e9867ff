"""measurement.created and measurement.reviewed: recorded with the change, delivered signed to a receiver on
127.0.0.1 by the classifier's delivery machinery, valid against the committed schema's webhooks."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
import yaml
from django.urls import resolve

from biometry import services
from classifier.models import WebhookDelivery, WebhookEndpoint
from classifier.webhooks import webhook_delivery_attempt, webhook_endpoint_save
from tests.api.test_webhook_events import COMMITTED, schema_errors
from tests.api.webhook_receiver import Receiver, serving
from tests.biometry.conftest import brain_image, measured

pytestmark = pytest.mark.usefixtures("measuring", "model_version")
BASE_URL = "https://fetal.example.test"


@pytest.fixture(scope="module")
def openapi() -> dict:
    return yaml.safe_load(COMMITTED.read_text())


@pytest.fixture
def receiver():
    with serving(Receiver()) as receiver:
        yield receiver


@pytest.fixture
def endpoint(north, receiver, settings):
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.PUBLIC_BASE_URL = BASE_URL
    return webhook_endpoint_save(endpoint=WebhookEndpoint(clinic=north, url=receiver.url))


def _delivered(receiver, event_type: str) -> list[dict]:
    for delivery in WebhookDelivery.objects.filter(event_type=event_type).order_by("id"):
        webhook_delivery_attempt(delivery_id=delivery.id)
    return [
        {**r, "event": json.loads(r["body"])} for r in receiver.received if r["headers"]["X-Fetal-Event"] == event_type
    ]


class TestMeasurementEvents:
    def test_a_saved_measurement_is_delivered_as_measurement_created(
        self, endpoint, receiver, study, openapi, api_client
    ):
        image = brain_image(study, pixel_size_mm=0.5)
        image.measurement_jobs.update(request_id="upload-request-1")
        measurement = measured(image)

        (request,) = _delivered(receiver, "measurement.created")

        event, data = request["event"], request["event"]["data"]
        assert schema_errors(openapi, "measurement.created", event) == []
        assert (data["study"], data["image"], data["measurement"]["id"]) == (study.id, image.id, measurement.id)
        assert data["measurement"]["hc_mm"] == pytest.approx(measurement.hc_mm)
        assert request["headers"]["X-Request-ID"] == "upload-request-1"  # the job's (its upload's) request
        for name, link in data["links"].items():
            route = resolve(urlsplit(link).path)
            assert link.startswith(BASE_URL), link
            if name == "self":
                assert route.url_name == "api-measurement"
                assert api_client.get(urlsplit(link).path).json()["id"] == measurement.id
            if name == "review":
                assert route.url_name == "api-measurement-review"

    def test_a_review_is_delivered_as_measurement_reviewed(self, endpoint, receiver, study, clinician, openapi):
        measurement = measured(brain_image(study, pixel_size_mm=0.5))
        services.measurement_review(measurement=measurement, reviewed_by=clinician, action="reject", comment="Blurred")

        (request,) = _delivered(receiver, "measurement.reviewed")

        assert schema_errors(openapi, "measurement.reviewed", request["event"]) == []
        shown = request["event"]["data"]["measurement"]
        assert (shown["review_state"], shown["reviewed_by"], shown["review_comment"]) == (
            "rejected",
            "clin_north",
            "Blurred",
        )

    def test_an_endpoint_that_did_not_subscribe_gets_none(self, endpoint, receiver, study):
        endpoint.events = ["prediction.created"]
        webhook_endpoint_save(endpoint=endpoint)
        measured(brain_image(study))
        assert not WebhookDelivery.objects.filter(event_type__startswith="measurement.").exists()
