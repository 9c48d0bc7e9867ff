"""Every webhook event, built by the real code path and POSTed to a receiver on 127.0.0.1, is what
docs/openapi.yaml's OpenAPI 3.1 ``webhooks`` describe (no key the schema does not name), has the keys of the
example docs/api.md shows, and carries absolute links that answer; the examples are the schema's."""

from __future__ import annotations

import copy
import json
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from django.conf import settings
from django.urls import resolve
from jsonschema import Draft202012Validator

from biometry import services as biometry_services
from classifier import services as classifier_services
from classifier.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from classifier.webhook_events import EVENT_VERSION, EXAMPLES
from classifier.webhooks import webhook_delivery_attempt, webhook_endpoint_save
from patients.models import UltrasoundImage
from tests.api.conftest import classify, upload
from tests.api.docs_code import docs_block
from tests.api.webhook_receiver import Receiver, serving
from tests.biometry.conftest import card_without_model, measured

COMMITTED = Path(settings.BASE_DIR) / "docs" / "openapi.yaml"
BASE_URL = "https://fetal.example.test:8443"
# The route each link names, so a link cannot point at the wrong kind of record.
LINK_ROUTES = {
    "study": "api-study",
    "image": "api-image",
    "original": "api-image-original",
    "history": "api-image-history",
    "job": "api-job",
    "retry": "api-job-retry",
}
SELF_ROUTES = {"prediction": "api-prediction", "job": "api-job"}


@pytest.fixture(scope="module")
def openapi() -> dict:
    return yaml.safe_load(COMMITTED.read_text())


def _closed(node):
    """Every object schema that names its properties and says nothing else gets additionalProperties: false,
    so a key the schema does not describe fails validation."""
    if isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            _closed(value)
    elif isinstance(node, list):
        for value in node:
            _closed(value)
    return node


def schema_errors(openapi: dict, event_type: str, payload: dict) -> list[str]:
    """What the schema's webhook for this event type finds wrong with the payload (JSON Schema 2020-12)."""
    body = openapi["webhooks"][event_type]["post"]["requestBody"]["content"]["application/json"]["schema"]
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **body}
    schema["components"] = _closed(copy.deepcopy(openapi["components"]))
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(payload)]


def keys(value):
    """The keys, all the way down; what two payloads must share whatever their values."""
    return {key: keys(item) for key, item in value.items()} if isinstance(value, dict) else None


@pytest.fixture
def receiver():
    with serving(Receiver()) as receiver:
        yield receiver


@pytest.fixture
def endpoint(north, receiver, settings):
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.PUBLIC_BASE_URL = f"{BASE_URL}/"  # a trailing slash must not double the links' slashes
    return webhook_endpoint_save(endpoint=WebhookEndpoint(clinic=north, url=receiver.url))


def _deliver_all() -> None:
    for delivery in WebhookDelivery.objects.order_by("id"):
        webhook_delivery_attempt(delivery_id=delivery.id)


@pytest.fixture
def delivered(endpoint, receiver, study, model_version, clinician, admin_user, settings, tmp_path) -> dict[str, dict]:
    """One event of each type, made by the services that make them in production, as the receiver got them:
    {type: {"headers", "body", "event"}}."""
    settings.BIOMETRY_MODEL_CARD = card_without_model(tmp_path)  # a brain plane queues its measurement job
    created = upload(study, seed=1)
    classify(created, label="fetal_brain")
    biometry_services.measurement_review(measurement=measured(created), reviewed_by=clinician, action="accept")
    classifier_services.image_review(image=created, label="fetal_thorax", reviewed_by=clinician, comment="Thorax.")
    failing = upload(study, seed=2)
    classifier_services.job_mark_failed(job_id=failing.jobs.get().id, reason="OSError: image file is truncated")
    classifier_services.webhook_test_event_send(endpoint=endpoint, requested_by=admin_user)
    _deliver_all()
    received = {r["headers"]["X-Fetal-Event"]: {**r, "event": json.loads(r["body"])} for r in receiver.received}
    assert sorted(received) == sorted(WebhookEvent.values)
    return received


class TestDeliveredEvents:
    def test_every_event_validates_against_its_webhook_in_the_schema(self, delivered, openapi):
        for event_type, request in delivered.items():
            assert schema_errors(openapi, event_type, request["event"]) == [], event_type

    def test_every_event_has_the_keys_of_its_documented_example(self, delivered):
        for event_type, request in delivered.items():
            assert keys(request["event"]) == keys(EXAMPLES[event_type]), event_type

    def test_envelope_and_headers_say_the_type_id_and_format_version(self, delivered):
        for event_type, request in delivered.items():
            event, headers = request["event"], request["headers"]
            assert (event["type"], event["version"]) == (event_type, EVENT_VERSION) == (event_type, 2)
            assert headers["X-Fetal-Event-Id"] == event["id"]
            assert headers["X-Fetal-Event-Version"] == "2"
            assert datetime.fromisoformat(event["created_at"]).tzinfo is not None

    def test_ids_are_bare_integers_and_links_absolute_urls_that_answer(self, delivered, api_client):
        for event_type in ("prediction.created", "prediction.reviewed", "job.failed"):
            data = delivered[event_type]["event"]["data"]
            assert isinstance(data["study"], int) and isinstance(data["image"], int)
            kind = "job" if event_type == "job.failed" else "prediction"
            for name, link in data["links"].items():
                parts = urlsplit(link)
                assert f"{parts.scheme}://{parts.netloc}" == BASE_URL, (event_type, name, link)
                route = resolve(parts.path)
                assert route.url_name == (SELF_ROUTES[kind] if name == "self" else LINK_ROUTES[name]), link
                if name != "retry":  # retry is a POST
                    assert api_client.get(parts.path).status_code == 200, link
            assert data["links"]["image"].endswith(f"/images/{data['image']}/")
            assert data["links"]["study"].endswith(f"/studies/{data['study']}/")
            assert data["links"]["self"].endswith(f"/{kind}s/{data[kind]['id']}/")

    def test_a_prediction_carries_its_created_at_and_inference_ms(self, delivered, api_client):
        prediction = delivered["prediction.created"]["event"]["data"]["prediction"]

        answered = api_client.get(f"/api/v1/predictions/{prediction['id']}/").json()

        assert prediction["inference_ms"] == 12.5
        assert prediction["created_at"] == answered["created_at"]
        assert delivered["prediction.reviewed"]["event"]["data"]["prediction"]["reviewed_label"] == "fetal_thorax"

    def test_the_test_event_names_its_endpoint_and_who_sent_it(self, delivered, endpoint, admin_user):
        data = delivered["webhook.test"]["event"]["data"]

        assert (data["endpoint"], data["requested_by"]) == (endpoint.id, admin_user.username)


class TestDeliverySemantics:
    def test_an_image_uploaded_before_originals_were_kept_links_no_original(self, endpoint, receiver, study, openapi):
        image = upload(study, seed=3)
        UltrasoundImage.objects.filter(id=image.id).update(original=None)
        classify(image)

        _deliver_all()

        event = receiver.events()[0]
        assert event["data"]["links"]["original"] is None
        assert schema_errors(openapi, "prediction.created", event) == []

    def test_a_retried_event_can_arrive_after_a_later_one_and_created_at_orders_them(
        self, endpoint, receiver, study, model_version, clinician
    ):
        receiver.statuses = [503]  # the first delivery (prediction.created) fails once
        image = upload(study, seed=4)
        classify(image)
        classifier_services.image_review(image=image, label="fetal_femur", reviewed_by=clinician)
        created, reviewed = WebhookDelivery.objects.order_by("id")

        for delivery in (created, reviewed, created):
            webhook_delivery_attempt(delivery_id=delivery.id)

        arrived = [event["type"] for event in receiver.events()]
        in_order = [e["type"] for e in sorted(receiver.events()[1:], key=lambda e: e["created_at"])]
        assert arrived == ["prediction.created", "prediction.reviewed", "prediction.created"]
        assert in_order == ["prediction.created", "prediction.reviewed"]
        assert receiver.events()[0]["id"] == receiver.events()[2]["id"], "a retry carries the same event id"

    def test_a_delivery_recorded_before_versions_is_sent_as_version_1(self, endpoint, receiver):
        version_1 = {"id": "6f1c0c7e-3b1a-4a8e-9a51-0d5c8b1e2f3a", "type": "job.failed", "created_at": "…", "data": {}}
        delivery = WebhookDelivery.objects.create(endpoint=endpoint, event_type="job.failed", payload=version_1)

        webhook_delivery_attempt(delivery_id=delivery.id)

        assert receiver.received[0]["headers"]["X-Fetal-Event-Version"] == "1"


class TestDocumentedExamples:
    @pytest.mark.parametrize("event_type", WebhookEvent.values)
    def test_the_example_validates_and_is_the_schemas_and_the_docs(self, openapi, event_type):
        in_schema = openapi["webhooks"][event_type]["post"]["requestBody"]["content"]["application/json"]
        in_docs = json.loads(docs_block(f"webhook-example-{event_type.replace('.', '-')}", language="json"))

        assert schema_errors(openapi, event_type, EXAMPLES[event_type]) == []
        assert [example["value"] for example in in_schema["examples"].values()] == [EXAMPLES[event_type]]
        assert in_docs == EXAMPLES[event_type], "docs/api.md: paste " + json.dumps(EXAMPLES[event_type], indent=2)

    @pytest.mark.parametrize("event_type", ["prediction.created", "prediction.reviewed", "job.failed"])
    def test_the_examples_links_are_routes_of_their_kind(self, event_type):
        data = EXAMPLES[event_type]["data"]
        kind = "job" if event_type == "job.failed" else "prediction"

        for name, link in data["links"].items():
            route = resolve(urlsplit(link).path)
            assert route.url_name == (SELF_ROUTES[kind] if name == "self" else LINK_ROUTES[name]), link
            assert str(data[kind]["id"] if name == "self" else "") in link

    def test_the_schema_check_refuses_a_key_the_schema_does_not_name_or_a_missing_one(self, openapi):
        extra = copy.deepcopy(EXAMPLES["prediction.created"])
        extra["data"]["links"]["thumbnail"] = f"{BASE_URL}/thumbnail/"
        missing = copy.deepcopy(EXAMPLES["prediction.created"])
        del missing["data"]["prediction"]["inference_ms"]

        assert schema_errors(openapi, "prediction.created", extra) != []
        assert schema_errors(openapi, "prediction.created", missing) != []
        assert schema_errors(openapi, "job.failed", EXAMPLES["prediction.created"]) != []
