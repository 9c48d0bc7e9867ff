from __future__ import annotations

import secrets
import uuid

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import F, Q
from simple_history.models import HistoricalRecords

from classifier.labels import FetalPlane
from classifier.webhook_targets import WebhookTargetRefused, webhook_target_resolve


class ModelVersion(models.Model):
    """A registered model artifact from MODELS_DIR, described by its model card."""

    name = models.CharField(max_length=100)
    version = models.CharField(max_length=32)
    file_path = models.CharField(max_length=255, help_text="Relative to MODELS_DIR.")
    sha256 = models.CharField(max_length=64)
    class_labels = models.JSONField()
    input_size = models.PositiveIntegerField()
    review_threshold = models.FloatField(help_text="Predictions below this confidence need review.")
    novelty_threshold = models.FloatField(
        null=True,
        blank=True,
        help_text="Images whose similarity to the nearest training image is below this need review "
        "(empty for models without a novelty output).",
    )
    metrics = models.JSONField(default=dict, blank=True)
    card = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=False)
    registered_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="model_version_unique"),
            models.UniqueConstraint(
                fields=["is_active"],
                condition=Q(is_active=True),
                name="model_version_one_active",
                violation_error_message="Only one model version can be active.",
            ),
            models.CheckConstraint(
                condition=Q(review_threshold__gte=0) & Q(review_threshold__lte=1),
                name="model_version_threshold_0_1",
            ),
            models.CheckConstraint(
                condition=Q(novelty_threshold__isnull=True)
                | (Q(novelty_threshold__gte=-1) & Q(novelty_threshold__lte=1)),
                name="model_version_novelty_threshold_cosine",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version} (#{self.id})"


class ClassificationJobQuerySet(models.QuerySet):
    def for_clinics(self, clinic_ids) -> ClassificationJobQuerySet:
        return self.filter(image__study__patient__clinic_id__in=clinic_ids)

    def newest_first(self) -> ClassificationJobQuerySet:
        """An image's newest job comes first: the one whose result the image shows."""
        return self.order_by("-queued_at", "-id")


class ClassificationJob(models.Model):
    class Status(models.TextChoices):
        QUEUED = "QUEUED", "Queued"
        RUNNING = "RUNNING", "Running"
        SUCCEEDED = "SUCCEEDED", "Succeeded"
        FAILED = "FAILED", "Failed"

    image = models.ForeignKey("patients.UltrasoundImage", on_delete=models.PROTECT, related_name="jobs")
    # Null when no model was active at upload time; such a job fails with "no active model".
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="jobs"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    celery_task_id = models.CharField(max_length=64, blank=True)
    # The X-Request-ID of the request that queued the job, carried into the worker's logs and the webhooks.
    request_id = models.CharField(max_length=64, blank=True)
    queued_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords()

    objects = ClassificationJobQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["image", "model_version"], name="job_unique_per_image_and_model"),
        ]
        indexes = [
            # The worker's micro-batch claim and the stale-job sweeper read only the few unfinished jobs, oldest
            # first; a partial index keeps that cheap however many finished jobs pile up.
            models.Index(
                fields=["status", "queued_at"],
                condition=Q(status__in=["QUEUED", "RUNNING"]),
                name="job_active_by_queued_at",
            ),
        ]

    def __str__(self) -> str:
        return f"Job #{self.id} for image #{self.image_id}: {self.status}"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)


class CineFrames(models.Model):
    """What a clip's job found frame by frame: compact per-frame probabilities, and its key frames.

    The probabilities are float16, frame after frame, in ``class_labels`` order (8 bytes a frame for four
    planes); ``flags`` has one byte a frame, 1 where the review rule flags the frame. A clip has no Prediction
    of its own: its key frames (stills linked to it) are classified and reviewed like any image."""

    job = models.OneToOneField(ClassificationJob, on_delete=models.PROTECT, related_name="cine_frames")
    frame_count = models.PositiveIntegerField()
    class_labels = models.JSONField(help_text="The order of each frame's probabilities.")
    probabilities = models.BinaryField(help_text="float16 little-endian, frame_count x len(class_labels).")
    flags = models.BinaryField(help_text="One byte a frame: 1 where the review rule flags it.")
    similarities = models.BinaryField(
        blank=True, help_text="float16 per frame: similarity to the nearest training image (novelty models)."
    )
    # Blank is allowed: a clip none of whose frames passes the review rule has no key frame ([]), and is analysed.
    key_frames = models.JSONField(
        default=list,
        blank=True,
        help_text='Per plane with an unflagged frame: {"label", "frame_index", "confidence"}.',
    )
    inference_ms = models.FloatField(help_text="Decoding, preprocessing and prediction of every frame.")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.frame_count} frames of job #{self.job_id}"

    def probability_rows(self):
        """The probabilities as a (frame_count, classes) float32 array."""
        import numpy as np

        values = np.frombuffer(bytes(self.probabilities), dtype="<f2")
        return values.reshape(self.frame_count, len(self.class_labels)).astype(np.float32)

    def flag_list(self) -> list[bool]:
        return [bool(b) for b in bytes(self.flags)]

    def frame_labels(self) -> list[str]:
        """The predicted plane of every frame."""
        rows = self.probability_rows()
        return [self.class_labels[int(i)] for i in rows.argmax(axis=1)] if len(rows) else []


class PredictionQuerySet(models.QuerySet):
    def for_clinics(self, clinic_ids) -> PredictionQuerySet:
        return self.filter(job__image__study__patient__clinic_id__in=clinic_ids)

    def reviewed(self, reviewed: bool = True) -> PredictionQuerySet:
        """Confirmed, corrected or marked not a plane by a clinician (``reviewed=False``: still a suggestion)."""
        suggested = Q(review_state=Prediction.ReviewState.SUGGESTED)
        return self.exclude(suggested) if reviewed else self.filter(suggested)

    def awaiting_review(self) -> PredictionQuerySet:
        """Flagged by the model (needs_review) and not yet reviewed by a clinician."""
        return self.filter(needs_review=True).reviewed(False)


class Prediction(models.Model):
    class ReviewState(models.TextChoices):
        # Until a clinician has looked, the model's label is only a suggestion, flagged or not.
        SUGGESTED = "suggested", "Suggested"
        CONFIRMED = "confirmed", "Confirmed"
        CORRECTED = "corrected", "Corrected"
        NOT_A_PLANE = "not_a_plane", "Not a standard fetal plane"

    class NotPlaneReason(models.TextChoices):
        OTHER_ANATOMY = "other_anatomy", "Other anatomy"
        MATERNAL = "maternal", "Maternal"
        NON_FETAL = "non_fetal", "Not fetal / not ultrasound"
        UNUSABLE_QUALITY = "unusable_quality", "Unusable quality"

    job = models.OneToOneField(ClassificationJob, on_delete=models.PROTECT, related_name="prediction")
    label = models.CharField(max_length=32, choices=FetalPlane.choices)
    confidence = models.FloatField()
    probabilities = models.JSONField(help_text="Probability of every class, keyed by label.")
    needs_review = models.BooleanField()
    similarity = models.FloatField(
        null=True,
        blank=True,
        help_text="Cosine similarity of the image's features to the nearest training image's "
        "(empty for models without a novelty output).",
    )
    inference_ms = models.FloatField()
    runtime = models.CharField(
        max_length=16, blank=True, help_text="What ran the model: keras or litert (empty before issue 20)."
    )
    # Grad-CAM is made when someone first asks for it (a job on the heatmaps queue), not for every image.
    heatmap = models.FileField(max_length=255, blank=True)
    heatmap_requested_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    review_state = models.CharField(max_length=16, choices=ReviewState.choices, default=ReviewState.SUGGESTED)
    # The plane a clinician set (confirmed or corrected); empty while suggested and for not a plane.
    reviewed_label = models.CharField(max_length=32, choices=FetalPlane.choices, blank=True)
    not_plane_reason = models.CharField(
        max_length=24,
        choices=NotPlaneReason.choices,
        blank=True,
        help_text="Why a clinician said it is not a standard plane (review state not_a_plane).",
    )
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_comment = models.TextField(blank=True, max_length=2000)
    history = HistoricalRecords()

    objects = PredictionQuerySet.as_manager()

    class Meta:
        permissions = [("review_prediction", "Can confirm or correct a predicted label")]
        constraints = [
            models.CheckConstraint(
                condition=Q(confidence__gte=0) & Q(confidence__lte=1), name="prediction_confidence_0_1"
            ),
            models.CheckConstraint(
                condition=Q(review_state="suggested") | (Q(reviewed_by__isnull=False) & Q(reviewed_at__isnull=False)),
                name="prediction_review_has_reviewer",
            ),
            # Each state carries exactly what it means: a plane for confirmed (the model's) and corrected
            # (another), a reason for not a plane, neither for a suggestion.
            models.CheckConstraint(
                condition=Q(review_state="suggested", reviewed_label="", not_plane_reason="")
                | Q(review_state="confirmed", reviewed_label=F("label"), not_plane_reason="")
                | (
                    Q(review_state="corrected", not_plane_reason="")
                    & ~Q(reviewed_label="")
                    & ~Q(reviewed_label=F("label"))
                )
                | (Q(review_state="not_a_plane", reviewed_label="") & ~Q(not_plane_reason="")),
                name="prediction_review_state_consistent",
                violation_error_message="The review state does not match the reviewed label and reason.",
            ),
        ]

    def __str__(self) -> str:
        return f"Prediction #{self.id}: {self.final_label or self.review_state} ({self.confidence:.2f})"

    @property
    def unlike_training_images(self) -> bool:
        """The novelty check flagged it: the image looks like nothing the model was trained on."""
        version = self.job.model_version
        threshold = version.novelty_threshold if version is not None else None
        return self.similarity is not None and threshold is not None and self.similarity < threshold

    @property
    def is_reviewed(self) -> bool:
        return self.review_state != self.ReviewState.SUGGESTED

    @property
    def final_label(self) -> str:
        """The plane a clinician set, else the model's suggestion; empty when a clinician said it is no plane."""
        if self.review_state == self.ReviewState.NOT_A_PLANE:
            return ""
        return self.reviewed_label or self.label


# ---- Integrator API: idempotency keys and webhooks ------------------------------------------


class WebhookEvent(models.TextChoices):
    PREDICTION_CREATED = "prediction.created", "Prediction created: the model classified an image"
    PREDICTION_REVIEWED = "prediction.reviewed", "Prediction reviewed: a clinician confirmed or corrected it"
    JOB_FAILED = "job.failed", "Job failed: classification failed for good"
    # biometry's (above this app: its payloads are described in biometry/webhook_events.py).
    MEASUREMENT_CREATED = "measurement.created", "Measurement created: the model measured a brain plane's head"
    MEASUREMENT_REVIEWED = "measurement.reviewed", "Measurement reviewed: a clinician accepted, adjusted or rejected it"
    # Sent to one endpoint when an admin asks for it, whatever the endpoint subscribed to.
    TEST = "webhook.test", "Test event (sent from the admin on request)"


# The events an endpoint can subscribe to: all but the test event, which is sent only on request.
SUBSCRIBABLE_WEBHOOK_EVENTS = [event for event in WebhookEvent if event != WebhookEvent.TEST]


def _webhook_secret() -> str:
    return secrets.token_hex(32)


def _all_webhook_events() -> list[str]:
    return [event.value for event in SUBSCRIBABLE_WEBHOOK_EVENTS]


class WebhookEndpointQuerySet(models.QuerySet):
    def for_clinics(self, clinic_ids) -> WebhookEndpointQuerySet:
        return self.filter(clinic_id__in=clinic_ids)


class WebhookEndpoint(models.Model):
    """A clinic's callback URL; every event is POSTed to it, signed with its secret."""

    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, related_name="webhook_endpoints")
    url = models.URLField(max_length=500, help_text="HTTPS only (plain HTTP only when DEBUG is on).")
    secret = models.CharField(
        max_length=128,
        default=_webhook_secret,
        help_text="Shared with the receiver, who checks the X-Fetal-Signature header with it. Generated here, "
        "shown once when the endpoint is registered or its secret rotated.",
    )
    events = models.JSONField(default=_all_webhook_events, help_text="The event types sent to this URL.")
    is_active = models.BooleanField(default=True)
    description = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords(excluded_fields=["secret"])

    objects = WebhookEndpointQuerySet.as_manager()

    def __str__(self) -> str:
        return f"Webhook #{self.id} → {self.url}"

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        scheme = self.url.split(":", 1)[0].lower()
        plain_http_ok = settings.DEBUG or settings.WEBHOOK_ALLOW_HTTP
        if scheme != "https" and not (scheme == "http" and plain_http_ok):
            raise ValidationError({"url": "Use an https:// URL (plain http:// only when DEBUG is on)."})
        try:  # checked again before every delivery: DNS can change
            webhook_target_resolve(self.url)
        except WebhookTargetRefused as refused:
            raise ValidationError({"url": str(refused)}) from refused
        subscribable = _all_webhook_events()
        unknown = set(self.events or []) - set(subscribable) if isinstance(self.events, list) else {"?"}
        if unknown or not self.events:
            raise ValidationError({"events": f"Choose events among: {', '.join(subscribable)}."})


class WebhookDeliveryQuerySet(models.QuerySet):
    def for_clinics(self, clinic_ids) -> WebhookDeliveryQuerySet:
        return self.filter(endpoint__clinic_id__in=clinic_ids)


class WebhookDelivery(models.Model):
    """One event for one endpoint, and how its delivery went."""

    class Status(models.TextChoices):
        PENDING = "PENDING", "Pending"
        SENDING = "SENDING", "Sending"
        RETRYING = "RETRYING", "Retrying"
        SUCCEEDED = "SUCCEEDED", "Succeeded"
        FAILED = "FAILED", "Failed"

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.PROTECT, related_name="deliveries")
    event_id = models.UUIDField(default=uuid.uuid4, editable=False)
    event_type = models.CharField(max_length=32, choices=WebhookEvent.choices)
    payload = models.JSONField(encoder=DjangoJSONEncoder)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True, help_text="Sent as X-Request-ID with every attempt.")
    delivered_at = models.DateTimeField(null=True, blank=True)

    objects = WebhookDeliveryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event_id"], name="webhook_delivery_unique_per_event"),
        ]

    def __str__(self) -> str:
        return f"Delivery #{self.id} of {self.event_type}: {self.status}"
