"""The API's output shapes for jobs and predictions: the classifier's API, the image API (patients) and the
webhook payloads all serialize with these, so the three cannot drift apart."""

from __future__ import annotations

from rest_framework import serializers

from classifier.labels import PLANE_LABELS, FetalPlane
from classifier.models import ClassificationJob, Prediction

# The webhook events' examples (classifier.webhook_events); the API's own examples are recorded answers
# (fetalsite.core.api_examples).
EXAMPLE_PROBABILITIES = dict(zip(PLANE_LABELS, (0.91, 0.04, 0.03, 0.02), strict=True))
EXAMPLE_JOB = {
    "id": 31,
    "image": 12,
    "model_version": "fetalnet:1.0",
    "status": "SUCCEEDED",
    "attempts": 1,
    "error": "",
    "queued_at": "2026-11-27T10:15:02.114Z",
    "started_at": "2026-11-27T10:15:02.520Z",
    "finished_at": "2026-11-27T10:15:03.101Z",
}
EXAMPLE_PREDICTION = {
    "id": 27,
    "job": 31,
    "image": 12,
    "label": PLANE_LABELS[0],
    "confidence": 0.91,
    "probabilities": EXAMPLE_PROBABILITIES,
    "needs_review": False,
    "similarity": 0.93,
    "inference_ms": 41.7,
    "model_version": "fetalnet:1.0",
    "created_at": "2026-11-27T10:15:03.090Z",
    "review_state": "suggested",
    "reviewed_label": "",
    "not_plane_reason": "",
    "reviewed_by": None,
    "reviewed_at": None,
    "review_comment": "",
    "final_label": PLANE_LABELS[0],
}


class JobOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    image = serializers.IntegerField(source="image_id")
    model_version = serializers.SerializerMethodField(help_text="`name:version`, or null when no model was active.")
    status = serializers.ChoiceField(choices=ClassificationJob.Status.choices)
    attempts = serializers.IntegerField()
    error = serializers.CharField(allow_blank=True, help_text="Why the last attempt failed; empty otherwise.")
    queued_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)

    def get_model_version(self, job) -> str | None:
        version = job.model_version
        return f"{version.name}:{version.version}" if version else None


_PLANE_CHOICES = FetalPlane.choices


class PredictionOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    job = serializers.IntegerField(source="job_id")
    image = serializers.IntegerField(source="job.image_id")
    label = serializers.ChoiceField(choices=_PLANE_CHOICES, help_text="The model's label.")
    confidence = serializers.FloatField(min_value=0, max_value=1)
    probabilities = serializers.DictField(child=serializers.FloatField(), help_text="Every class's probability.")
    needs_review = serializers.BooleanField(
        help_text="Flagged for a person: the confidence is below the model's review threshold, or the image is "
        "unlike the training images (similarity below the model's novelty threshold)."
    )
    similarity = serializers.FloatField(
        allow_null=True,
        help_text="Cosine similarity of the image's features to the nearest training image's; null for models "
        "without a novelty output.",
    )
    inference_ms = serializers.FloatField()
    model_version = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    review_state = serializers.ChoiceField(
        choices=Prediction.ReviewState.choices,
        help_text="`suggested` until a clinician reviews it: the model's label is only a suggestion, flagged or "
        "not; then `confirmed` (the model's plane), `corrected` (another plane) or `not_a_plane`.",
    )
    reviewed_label = serializers.CharField(
        allow_blank=True,
        help_text="The plane a clinician set (confirmed or corrected); empty while suggested and for not_a_plane.",
    )
    not_plane_reason = serializers.CharField(
        allow_blank=True,
        help_text="For `not_a_plane`: `other_anatomy`, `maternal`, `non_fetal` or `unusable_quality`; else empty.",
    )
    reviewed_by = serializers.CharField(source="reviewed_by.username", allow_null=True, default=None)
    reviewed_at = serializers.DateTimeField(allow_null=True)
    review_comment = serializers.CharField(allow_blank=True)
    final_label = serializers.ChoiceField(
        choices=[*_PLANE_CHOICES, ("", "None")],
        help_text="The reviewed label, else the model's suggestion; empty when a clinician marked the image not a "
        "standard plane.",
    )

    def get_model_version(self, prediction) -> str | None:
        version = prediction.job.model_version
        return f"{version.name}:{version.version}" if version else None
