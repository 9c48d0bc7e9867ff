"""What each webhook event says: the envelope, each event's ``data`` (built with the API's own serializers),
absolute links, the examples docs/api.md shows, and the OpenAPI 3.1 ``webhooks`` that describe them
(``SPECTACULAR_SETTINGS["WEBHOOKS"]``).

The event format has a version, sent in the body and in ``X-Fetal-Event-Version``. Version 1 (until API 1.0)
had no ``version`` key and relative links; version 2 adds ``version``, makes every link absolute (from
``PUBLIC_BASE_URL``) and adds ``links.self``, ``links.study`` and ``links.job``. Ids (``study``, ``image``,
``prediction.id``, ``job.id``) stay bare integers, as the API's are."""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, OpenApiWebhook, extend_schema
from rest_framework import serializers

from classifier.models import ClassificationJob, Prediction, WebhookEndpoint, WebhookEvent
from classifier.serializers import EXAMPLE_JOB, EXAMPLE_PREDICTION, JobOutputSerializer, PredictionOutputSerializer
from fetalsite.core.request_id import HEADER as REQUEST_ID_HEADER

EVENT_VERSION = 2

SIGNATURE_HEADER = "X-Fetal-Signature"
TIMESTAMP_HEADER = "X-Fetal-Timestamp"
EVENT_HEADER = "X-Fetal-Event"
EVENT_ID_HEADER = "X-Fetal-Event-Id"
EVENT_VERSION_HEADER = "X-Fetal-Event-Version"
DELIVERY_HEADER = "X-Fetal-Delivery"
# (name, description) of every header a delivery carries; the schema and docs/api.md say the same.
HEADERS = (
    (EVENT_HEADER, "The event type, as in the body's `type`."),
    (EVENT_ID_HEADER, "The event's id, as in the body's `id`: the same on every retry and resend; drop repeats."),
    (EVENT_VERSION_HEADER, "The event format's version, as in the body's `version` (2)."),
    (DELIVERY_HEADER, "The delivery's id, as shown in Admin → Webhook deliveries."),
    (TIMESTAMP_HEADER, "Unix seconds when this attempt was signed; refuse it when far from your clock."),
    (SIGNATURE_HEADER, "`sha256=<hex>`: HMAC-SHA256, keyed with the endpoint's secret, of `<timestamp>.<raw body>`."),
    (
        REQUEST_ID_HEADER,
        "The request the event follows from (for `prediction.created` and `job.failed`, the upload's; your "
        "`X-Request-ID` if you sent one): quote it when asking about a delivery.",
    ),
)


def absolute_url(name: str, *args: object) -> str:
    """The API URL of a route, on the address integrators reach this server at (``PUBLIC_BASE_URL``)."""
    return settings.PUBLIC_BASE_URL.rstrip("/") + reverse(name, args=args)


# ---- Fields ------------------------------------------------------------------------------------


class ConstField(serializers.Field):
    """A value every event of one kind carries (its ``type``, its ``version``); the schema says ``const``.
    Not read-only: to a receiver an event is a request body, where readOnly would say "do not send"."""

    def __init__(self, value: str | int, **kwargs) -> None:
        self.value = value
        super().__init__(**kwargs)

    def get_attribute(self, instance) -> str | int:
        return self.value

    def to_representation(self, value) -> str | int:
        return value


class ConstFieldExtension(OpenApiSerializerFieldExtension):
    target_class = ConstField

    def map_serializer_field(self, auto_schema, direction) -> dict:
        kind = "integer" if isinstance(self.target.value, int) else "string"
        return {"type": kind, "const": self.target.value}


# ---- Links -------------------------------------------------------------------------------------


class ImageLinksSerializer(serializers.Serializer):
    """Absolute URLs, on the server's PUBLIC_BASE_URL, of what the event is about."""

    # Built from the record the event reports (``source="*"``) rather than by method fields, so that no field
    # is read-only: to a receiver an event is a request body.

    study = serializers.URLField(help_text="The study: `GET` it for its images and status.")
    image = serializers.URLField(help_text="The image, with its latest job and prediction.")
    original = serializers.URLField(
        allow_null=True,
        help_text="The uploaded bytes, unchanged; null for an image uploaded before originals were kept.",
    )
    history = serializers.URLField(help_text="Every change to the image, its jobs and its predictions.")

    def links(self, record) -> dict:
        raise NotImplementedError

    def to_representation(self, instance) -> dict:
        return super().to_representation(self.links(instance))

    @staticmethod
    def image_links(image) -> dict:
        return {
            "study": absolute_url("api-study", image.study_id),
            "image": absolute_url("api-image", image.id),
            "original": absolute_url("api-image-original", image.id) if image.original else None,
            "history": absolute_url("api-image-history", image.id),
        }


class PredictionEventLinksSerializer(ImageLinksSerializer):
    self = serializers.URLField(help_text="This prediction: `GET` it for its state now (the payload is a snapshot).")
    job = serializers.URLField(help_text="The job that made the prediction.")

    def links(self, prediction: Prediction) -> dict:
        return {
            **self.image_links(prediction.job.image),
            "self": absolute_url("api-prediction", prediction.id),
            "job": absolute_url("api-job", prediction.job_id),
        }


class JobEventLinksSerializer(ImageLinksSerializer):
    self = serializers.URLField(help_text="This job: `GET` it for its state now (the payload is a snapshot).")
    retry = serializers.URLField(help_text="`POST` here to classify the image again with the active model.")

    def links(self, job: ClassificationJob) -> dict:
        return {
            **self.image_links(job.image),
            "self": absolute_url("api-job", job.id),
            "retry": absolute_url("api-job-retry", job.id),
        }


# ---- Each event's data ------------------------------------------------------------------------

_STUDY_ID = "The study's id (an integer id, not a URL: `links.study` is its URL)."
_IMAGE_ID = "The image's id (an integer id, not a URL: `links.image` is its URL)."
_SNAPSHOT = "What `GET links.self` answered at the moment of the event."


class EventClipSerializer(serializers.Serializer):
    """The clip an image is a key frame of; null for any other image (built from the image)."""

    id = serializers.IntegerField(source="clip_id", help_text="The clip's image id (an image of kind `cine`).")
    frame_index = serializers.IntegerField(source="clip_frame_index", help_text="The clip's frame, counted from 0.")

    def to_representation(self, image) -> dict | None:
        return super().to_representation(image) if image.clip_id is not None else None


class PredictionEventDataSerializer(serializers.Serializer):
    study = serializers.IntegerField(source="job.image.study_id", help_text=_STUDY_ID)
    image = serializers.IntegerField(source="job.image_id", help_text=_IMAGE_ID)
    clip = EventClipSerializer(
        source="job.image",
        allow_null=True,
        help_text="When the image is a key frame of a cine loop (the best frame of its plane, stored as a "
        "still): the clip and its frame; null for any other image.",
    )
    prediction = PredictionOutputSerializer(source="*", help_text=_SNAPSHOT)
    links = PredictionEventLinksSerializer(source="*")


class JobEventDataSerializer(serializers.Serializer):
    study = serializers.IntegerField(source="image.study_id", help_text=_STUDY_ID)
    image = serializers.IntegerField(source="image_id", help_text=_IMAGE_ID)
    job = JobOutputSerializer(source="*", help_text=_SNAPSHOT)
    links = JobEventLinksSerializer(source="*")


class WebhookTestEventDataSerializer(serializers.Serializer):
    endpoint = serializers.IntegerField(source="endpoint.id", help_text="The id of the endpoint it was sent to.")
    requested_by = serializers.CharField(source="requested_by.username", help_text="Who sent it from the admin.")
    message = serializers.CharField()


# ---- Envelopes ---------------------------------------------------------------------------------
# Each is built from a dict with ``id``, ``created_at`` and ``data`` (the prediction, job or test request the
# event reports); ``type`` and ``version`` are the serializer's own.


class EventSerializer(serializers.Serializer):
    id = serializers.UUIDField(help_text="The event's id: the same on every retry and resend; drop repeats.")
    version = ConstField(EVENT_VERSION, help_text="The event format's version (docs/api.md).")
    created_at = serializers.DateTimeField(
        help_text="When the change happened. Deliveries are not ordered: order events by this, not by arrival."
    )


class PredictionCreatedEventSerializer(EventSerializer):
    """The model classified an image."""

    type = ConstField(WebhookEvent.PREDICTION_CREATED.value)
    data = PredictionEventDataSerializer()


class PredictionReviewedEventSerializer(EventSerializer):
    """A clinician confirmed or corrected a prediction."""

    type = ConstField(WebhookEvent.PREDICTION_REVIEWED.value)
    data = PredictionEventDataSerializer()


class JobFailedEventSerializer(EventSerializer):
    """Classification failed for good."""

    type = ConstField(WebhookEvent.JOB_FAILED.value)
    data = JobEventDataSerializer()


class WebhookTestEventSerializer(EventSerializer):
    """A test event an admin asked for; it reports no change."""

    type = ConstField(WebhookEvent.TEST.value)
    data = WebhookTestEventDataSerializer()


EVENT_SERIALIZERS: dict[str, type[EventSerializer]] = {
    WebhookEvent.PREDICTION_CREATED: PredictionCreatedEventSerializer,
    WebhookEvent.PREDICTION_REVIEWED: PredictionReviewedEventSerializer,
    WebhookEvent.JOB_FAILED: JobFailedEventSerializer,
    WebhookEvent.TEST: WebhookTestEventSerializer,
}


def event_register(event_type: WebhookEvent, serializer: type[EventSerializer], example: dict) -> None:
    """An app above the classifier describes an event of its own (biometry's ``measurement.*``): what builds its
    payload and its documented example. The event type itself is a ``WebhookEvent`` choice, so endpoints may
    subscribe to it; deliveries go through ``classifier.webhooks`` like every other event's."""
    EVENT_SERIALIZERS[event_type] = serializer
    EXAMPLES[event_type] = example


_TEST_MESSAGE = "A test event, sent from the admin on request. It reports no change; answer it with a 2xx."


def webhook_test_event_subject(*, endpoint: WebhookEndpoint, requested_by) -> dict:
    """What a ``webhook.test`` event reports: who asked for it, for which endpoint."""
    return {"endpoint": endpoint, "requested_by": requested_by, "message": _TEST_MESSAGE}


# ---- Examples (the schema's and docs/api.md's; tests check them against the schema and real payloads) -------

EXAMPLE_BASE_URL = "https://fetal.example-hospital.org"
EXAMPLE_STUDY = 5
EXAMPLE_IMAGE = EXAMPLE_PREDICTION["image"]


def _example_links(kind: str, record_id: int) -> dict:
    api = f"{EXAMPLE_BASE_URL}/api/v1"
    links = {
        "study": f"{api}/studies/{EXAMPLE_STUDY}/",
        "image": f"{api}/images/{EXAMPLE_IMAGE}/",
        "original": f"{api}/images/{EXAMPLE_IMAGE}/original/",
        "history": f"{api}/images/{EXAMPLE_IMAGE}/history/",
        "self": f"{api}/{kind}s/{record_id}/",
    }
    if kind == "prediction":
        return {**links, "job": f"{api}/jobs/{EXAMPLE_PREDICTION['job']}/"}
    return {**links, "retry": f"{api}/jobs/{record_id}/retry/"}


_EXAMPLE_REVIEWED = {
    **EXAMPLE_PREDICTION,
    "review_state": "corrected",
    "reviewed_label": "fetal_thorax",
    "reviewed_by": "clin_north",
    "reviewed_at": "2026-11-27T10:21:40.512803Z",
    "review_comment": "Thorax: the four-chamber view is visible.",
    "final_label": "fetal_thorax",
}
_EXAMPLE_FAILED_JOB = {
    **EXAMPLE_JOB,
    "id": 32,
    "image": EXAMPLE_IMAGE,
    "status": "FAILED",
    "attempts": 4,
    "error": "OSError: image file is truncated",
    "finished_at": "2026-11-27T10:15:24.877Z",
}


def _example(event_type: str, event_id: str, created_at: str, data: dict) -> dict:
    return {"id": event_id, "type": event_type, "version": EVENT_VERSION, "created_at": created_at, "data": data}


def _prediction_data(prediction: dict) -> dict:
    links = _example_links("prediction", prediction["id"])
    return {"study": EXAMPLE_STUDY, "image": EXAMPLE_IMAGE, "clip": None, "prediction": prediction, "links": links}


EXAMPLES: dict[str, dict] = {
    WebhookEvent.PREDICTION_CREATED: _example(
        WebhookEvent.PREDICTION_CREATED.value,
        "0b6f3c3e-8d0a-4d47-9a43-5f1f6a0c2b7e",
        "2026-11-27T10:15:03.094512Z",
        _prediction_data(EXAMPLE_PREDICTION),
    ),
    WebhookEvent.PREDICTION_REVIEWED: _example(
        WebhookEvent.PREDICTION_REVIEWED.value,
        "5d1e2f4a-3b6c-4e8f-a1d2-7c9b0e3f5a61",
        "2026-11-27T10:21:40.513020Z",
        _prediction_data(_EXAMPLE_REVIEWED),
    ),
    WebhookEvent.JOB_FAILED: _example(
        WebhookEvent.JOB_FAILED.value,
        "9a7c5e3b-1f2d-4c6a-8e0b-2d4f6a8c0e1b",
        "2026-11-27T10:15:24.878133Z",
        {
            "study": EXAMPLE_STUDY,
            "image": EXAMPLE_IMAGE,
            "job": _EXAMPLE_FAILED_JOB,
            "links": _example_links("job", _EXAMPLE_FAILED_JOB["id"]),
        },
    ),
    WebhookEvent.TEST: _example(
        WebhookEvent.TEST.value,
        "c3d4e5f6-a7b8-4c9d-8e0f-1a2b3c4d5e6f",
        "2026-11-27T09:58:12.004417Z",
        {"endpoint": 3, "requested_by": "root", "message": _TEST_MESSAGE},
    ),
}


# ---- The schema's webhooks ----------------------------------------------------------------------

_RECEIVED = OpenApiResponse(
    description="Received. Any other answer, or none within WEBHOOK_TIMEOUT_S (10 s), is retried with backoff."
)
_DELIVERY = (
    " Sent as a signed `POST` (headers: " + ", ".join(f"`{name}`" for name, _ in HEADERS) + "). Deliveries are not "
    "ordered and a retry can arrive after later events: order by `created_at`, drop repeats by `id`. See docs/api.md."
)


def webhook_schema(event_type: WebhookEvent, description: str) -> OpenApiWebhook:
    """The schema's webhook for an event type (biometry describes its events with this too)."""
    return OpenApiWebhook(
        name=event_type.value,
        decorator=extend_schema(
            summary=event_type.label,
            description=description + _DELIVERY,
            request=EVENT_SERIALIZERS[event_type],
            responses={"2XX": _RECEIVED},
            examples=[OpenApiExample(event_type.value, value=EXAMPLES[event_type])],
        ),
    )


# SPECTACULAR_SETTINGS["WEBHOOKS"] names each of these.
PREDICTION_CREATED_WEBHOOK = webhook_schema(
    WebhookEvent.PREDICTION_CREATED, "The model classified an image; `data.prediction` is the result."
)
PREDICTION_REVIEWED_WEBHOOK = webhook_schema(
    WebhookEvent.PREDICTION_REVIEWED,
    "A clinician confirmed or corrected a prediction, or marked the image not a standard fetal plane; "
    "`data.prediction` has the review (`review_state`, `reviewed_label`, `not_plane_reason`).",
)
JOB_FAILED_WEBHOOK = webhook_schema(
    WebhookEvent.JOB_FAILED, "Classification failed for good (after its retries); `data.job.error` says why."
)
TEST_WEBHOOK = webhook_schema(
    WebhookEvent.TEST,
    "Sent to one endpoint when an admin chooses *Send a test event*, whatever events the endpoint subscribed to.",
)


def webhook_headers_postprocess(result: dict, generator, request, public) -> dict:
    """A spectacular post-processing hook: the headers every delivery carries, as the webhooks' parameters
    (``OpenApiWebhook`` has no place for them)."""
    parameters = [
        {"name": name, "in": "header", "required": True, "description": text, "schema": {"type": "string"}}
        for name, text in HEADERS
    ]
    for path_item in result.get("webhooks", {}).values():
        for operation in path_item.values():
            operation["parameters"] = parameters
    return result
