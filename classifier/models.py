from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from classifier.labels import FetalPlane


class ModelVersion(models.Model):
    """A registered model artifact from MODELS_DIR, described by its model card."""

    name = models.CharField(max_length=100)
    version = models.CharField(max_length=32)
    file_path = models.CharField(max_length=255, help_text="Relative to MODELS_DIR.")
    sha256 = models.CharField(max_length=64)
    class_labels = models.JSONField()
    input_size = models.PositiveIntegerField()
    review_threshold = models.FloatField(help_text="Predictions below this confidence need review.")
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
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version} (#{self.id})"


class ClassificationJobQuerySet(models.QuerySet):
    def for_clinics(self, clinic_ids) -> ClassificationJobQuerySet:
        return self.filter(image__study__patient__clinic_id__in=clinic_ids)


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
    queued_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords()

    objects = ClassificationJobQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["image", "model_version"], name="job_unique_per_image_and_model"),
        ]

    def __str__(self) -> str:
        return f"Job #{self.id} for image #{self.image_id}: {self.status}"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)


class PredictionQuerySet(models.QuerySet):
    def for_clinics(self, clinic_ids) -> PredictionQuerySet:
        return self.filter(job__image__study__patient__clinic_id__in=clinic_ids)


class Prediction(models.Model):
    job = models.OneToOneField(ClassificationJob, on_delete=models.PROTECT, related_name="prediction")
    label = models.CharField(max_length=32, choices=FetalPlane.choices)
    confidence = models.FloatField()
    probabilities = models.JSONField(help_text="Probability of every class, keyed by label.")
    needs_review = models.BooleanField()
    inference_ms = models.FloatField()
    heatmap = models.FileField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    reviewed_label = models.CharField(max_length=32, choices=FetalPlane.choices, blank=True)
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
                condition=Q(reviewed_label="") | (Q(reviewed_by__isnull=False) & Q(reviewed_at__isnull=False)),
                name="prediction_review_has_reviewer",
            ),
        ]

    def __str__(self) -> str:
        return f"Prediction #{self.id}: {self.final_label} ({self.confidence:.2f})"

    @property
    def is_reviewed(self) -> bool:
        return bool(self.reviewed_label)

    @property
    def final_label(self) -> str:
        return self.reviewed_label or self.label
