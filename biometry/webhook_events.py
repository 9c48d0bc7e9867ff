"""What the ``measurement.created`` and ``measurement.reviewed`` webhook events say: built like the classifier's
events (classifier/webhook_events.py: the envelope, version 2, absolute links) with the measurement API's own
output serializer, and registered with the classifier's event table, whose delivery machinery sends them. The
event types are ``classifier.models.WebhookEvent`` choices, so endpoints subscribe to them like any other."""

from __future__ import annotations

from rest_framework import serializers

from biometry.models import Measurement
from biometry.serializers import MeasurementOutputSerializer
from classifier.models import WebhookEvent
from classifier.webhook_events import (
    EVENT_VERSION,
    EXAMPLE_BASE_URL,
    EXAMPLE_IMAGE,
    EXAMPLE_STUDY,
    ConstField,
    EventSerializer,
    ImageLinksSerializer,
    absolute_url,
    event_register,
    webhook_schema,
)

MEASUREMENT_CREATED = WebhookEvent.MEASUREMENT_CREATED
MEASUREMENT_REVIEWED = WebhookEvent.MEASUREMENT_REVIEWED


class MeasurementEventLinksSerializer(ImageLinksSerializer):
    self = serializers.URLField(help_text="This measurement: `GET` it for its state now (the payload is a snapshot).")
    review = serializers.URLField(help_text="`POST` a clinician's review here.")

    def links(self, measurement: Measurement) -> dict:
        return {
            **self.image_links(measurement.image),
            "self": absolute_url("api-measurement", measurement.id),
            "review": absolute_url("api-measurement-review", measurement.id),
        }


class MeasurementEventDataSerializer(serializers.Serializer):
    study = serializers.IntegerField(source="image.study_id", help_text="The study's id (`links.study` is its URL).")
    image = serializers.IntegerField(source="image_id", help_text="The image's id (`links.image` is its URL).")
    measurement = MeasurementOutputSerializer(source="*", help_text="What `GET links.self` answered then.")
    links = MeasurementEventLinksSerializer(source="*")


class MeasurementCreatedEventSerializer(EventSerializer):
    """The model measured the head on a brain plane."""

    type = ConstField(MEASUREMENT_CREATED.value)
    data = MeasurementEventDataSerializer()


class MeasurementReviewedEventSerializer(EventSerializer):
    """A clinician accepted, adjusted, redrew or rejected a head measurement."""

    type = ConstField(MEASUREMENT_REVIEWED.value)
    data = MeasurementEventDataSerializer()


# ---- Examples (the schema's and docs/api.md's) -------------------------------------------------------

_EXAMPLE_MEASUREMENT = 4
_API = f"{EXAMPLE_BASE_URL}/api/v1"
_GROWTH_PENDING = {
    "calibrated": True,
    "hc_mm": None,
    "ga_from_hc_days": None,
    "ga_from_hc": None,
    "ga_reason": "not reviewed yet: a clinician must accept or adjust the ellipse",
    "study_ga_days": 143,
    "zscore": None,
    "centile": None,
    "centile_reason": "not reviewed yet: a clinician must accept or adjust the ellipse",
    "ga_source": "INTERGROWTH-21st HC dating, Papageorghiou et al., Ultrasound Obstet Gynecol 2016 (14+0 to 25+6 "
    "weeks)",
    "centile_source": "INTERGROWTH-21st fetal HC standard, Papageorghiou et al., Lancet 2014 (14+0 to 40+0 weeks)",
}
_ELLIPSE = {"cx": 401.2, "cy": 268.9, "semi_major": 105.4, "semi_minor": 84.1, "angle_deg": 12.5}
_EXAMPLE_CREATED = {
    "id": _EXAMPLE_MEASUREMENT,
    "image": EXAMPLE_IMAGE,
    "job": 6,
    "model_version": "fetal-head-v1",
    "review_state": "suggested",
    "ellipse": _ELLIPSE,
    "model_ellipse": _ELLIPSE,
    "hc_px": 597.2,
    "bpd_px": 168.2,
    "ofd_px": 210.8,
    "hc_mm": 167.2,
    "bpd_mm": 47.1,
    "ofd_mm": 59.0,
    "calibrated": True,
    "pixel_size_mm": 0.28,
    "calibration_source": "upload",
    "flags": [],
    "needs_review": False,
    "fit_iou": 0.991,
    "inference_ms": 61.3,
    "total_ms": 78.9,
    "runtime": "litert",
    "created_at": "2026-11-27T10:15:04.201Z",
    "reviewed_by": None,
    "reviewed_at": None,
    "review_comment": "",
    "growth": _GROWTH_PENDING,
}
_ADJUSTED = {"cx": 401.0, "cy": 269.5, "semi_major": 106.0, "semi_minor": 84.5, "angle_deg": 12.0}
_EXAMPLE_REVIEWED = {
    **_EXAMPLE_CREATED,
    "review_state": "adjusted",
    "ellipse": _ADJUSTED,
    "hc_px": 600.4,
    "bpd_px": 169.0,
    "ofd_px": 212.0,
    "hc_mm": 168.1,
    "bpd_mm": 47.3,
    "ofd_mm": 59.4,
    "reviewed_by": "clin_north",
    "reviewed_at": "2026-11-27T10:22:10.118Z",
    "review_comment": "Calipers moved onto the outer edge of the skull.",
    "growth": {
        **_GROWTH_PENDING,
        "hc_mm": 168.1,
        "ga_from_hc_days": 137.6,
        "ga_from_hc": "19+4",
        "ga_reason": "",
        "zscore": -1.27,
        "centile": 10.3,
        "centile_reason": "",
    },
}


def _example(event_type: WebhookEvent, event_id: str, created_at: str, measurement: dict) -> dict:
    links = {
        "study": f"{_API}/studies/{EXAMPLE_STUDY}/",
        "image": f"{_API}/images/{EXAMPLE_IMAGE}/",
        "original": f"{_API}/images/{EXAMPLE_IMAGE}/original/",
        "history": f"{_API}/images/{EXAMPLE_IMAGE}/history/",
        "self": f"{_API}/measurements/{_EXAMPLE_MEASUREMENT}/",
        "review": f"{_API}/measurements/{_EXAMPLE_MEASUREMENT}/review/",
    }
    data = {"study": EXAMPLE_STUDY, "image": EXAMPLE_IMAGE, "measurement": measurement, "links": links}
    return {"id": event_id, "type": event_type.value, "version": EVENT_VERSION, "created_at": created_at, "data": data}


event_register(
    MEASUREMENT_CREATED,
    MeasurementCreatedEventSerializer,
    _example(MEASUREMENT_CREATED, "7e4a1c2b-5d3f-4a6e-9b8c-0d1e2f3a4b5c", "2026-11-27T10:15:04.205Z", _EXAMPLE_CREATED),
)
event_register(
    MEASUREMENT_REVIEWED,
    MeasurementReviewedEventSerializer,
    _example(
        MEASUREMENT_REVIEWED, "2f6b8d0a-1c3e-4f5a-8b7c-9d0e1f2a3b4c", "2026-11-27T10:22:10.120Z", _EXAMPLE_REVIEWED
    ),
)

# SPECTACULAR_SETTINGS["WEBHOOKS"] names these.
MEASUREMENT_CREATED_WEBHOOK = webhook_schema(
    MEASUREMENT_CREATED,
    "The model measured the fetal head on a brain plane; `data.measurement` has the ellipse, HC, BPD and OFD "
    "(millimetres only when the image is calibrated) and its flags.",
)
MEASUREMENT_REVIEWED_WEBHOOK = webhook_schema(
    MEASUREMENT_REVIEWED,
    "A clinician accepted, adjusted, redrew or rejected a head measurement; `data.measurement` has the review "
    "and, from a calibrated accepted or adjusted HC, the gestational age and centile (`growth`).",
)
