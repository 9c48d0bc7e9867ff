"""Head measurements: a job per image and segmentation model, and the ellipse it found with its review."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from simple_history.models import HistoricalRecords


class MeasurementJobQuerySet(models.QuerySet):
    def for_clinics(self, clinic_ids) -> MeasurementJobQuerySet:
        return self.filter(image__study__patient__clinic_id__in=clinic_ids)


class MeasurementJob(models.Model):
    """Measuring one image with one segmentation model: queued after the image is found to be a brain plane."""

    class Status(models.TextChoices):
        QUEUED = "QUEUED", "Queued"
        RUNNING = "RUNNING", "Running"
        SUCCEEDED = "SUCCEEDED", "Succeeded"
        FAILED = "FAILED", "Failed"

    image = models.ForeignKey("patients.UltrasoundImage", on_delete=models.PROTECT, related_name="measurement_jobs")
    model_version = models.CharField(max_length=64, help_text="The segmentation model's name, e.g. fetal-head-v1.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    celery_task_id = models.CharField(max_length=64, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    queued_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords()

    objects = MeasurementJobQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["image", "model_version"], name="measurement_job_unique_per_image_model"),
        ]
        indexes = [
            models.Index(
                fields=["status", "queued_at"],
                condition=Q(status__in=["QUEUED", "RUNNING"]),
                name="measurement_job_active",
            ),
        ]

    def __str__(self) -> str:
        return f"Measurement job #{self.id} for image #{self.image_id}: {self.status}"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)


class MeasurementQuerySet(models.QuerySet):
    def for_clinics(self, clinic_ids) -> MeasurementQuerySet:
        return self.filter(image__study__patient__clinic_id__in=clinic_ids)


class Measurement(models.Model):
    """The skull ellipse on one image (image pixels, origin top left, angle in degrees from +x towards +y).

    ``model_ellipse`` keeps what the model found and never changes; the ellipse fields are the current one,
    which a clinician may adjust or redraw. HC, BPD and OFD follow the current ellipse: in pixels always, in
    millimetres only when the image has a pixel size (``pixel_size_mm`` and its source are copied from the
    image when measured or recalibrated, so a figure always says which calibration it used).
    """

    class ReviewState(models.TextChoices):
        SUGGESTED = "suggested", "Suggested"
        ACCEPTED = "accepted", "Accepted"
        ADJUSTED = "adjusted", "Adjusted"
        REJECTED = "rejected", "Rejected"

    job = models.OneToOneField(MeasurementJob, on_delete=models.PROTECT, related_name="measurement")
    image = models.ForeignKey("patients.UltrasoundImage", on_delete=models.PROTECT, related_name="measurements")
    model_ellipse = models.JSONField(
        null=True,
        blank=True,
        help_text="The model's ellipse {cx, cy, semi_major, semi_minor, angle_deg}; empty: none found.",
    )
    center_x = models.FloatField(null=True, blank=True)
    center_y = models.FloatField(null=True, blank=True)
    semi_major = models.FloatField(null=True, blank=True, help_text="Half the long axis, in image pixels.")
    semi_minor = models.FloatField(null=True, blank=True, help_text="Half the short axis, in image pixels.")
    angle_deg = models.FloatField(null=True, blank=True, help_text="Long axis angle, degrees from +x towards +y.")
    hc_px = models.FloatField(null=True, blank=True)
    bpd_px = models.FloatField(null=True, blank=True)
    ofd_px = models.FloatField(null=True, blank=True)
    pixel_size_mm = models.FloatField(null=True, blank=True)
    calibration_source = models.CharField(max_length=16, blank=True)
    hc_mm = models.FloatField(null=True, blank=True)
    bpd_mm = models.FloatField(null=True, blank=True)
    ofd_mm = models.FloatField(null=True, blank=True)
    flags = models.JSONField(default=list, blank=True, help_text="Why the measurement needs review, e.g. border.")
    needs_review = models.BooleanField(default=False)
    fit_iou = models.FloatField(null=True, blank=True, help_text="Overlap of the fitted ellipse and the mask.")
    inference_ms = models.FloatField(null=True, blank=True)
    total_ms = models.FloatField(null=True, blank=True)
    runtime = models.CharField(max_length=16, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    review_state = models.CharField(max_length=16, choices=ReviewState.choices, default=ReviewState.SUGGESTED)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_comment = models.TextField(blank=True, max_length=2000)
    history = HistoricalRecords()

    objects = MeasurementQuerySet.as_manager()

    class Meta:
        permissions = [("review_measurement", "Can accept, adjust or reject a head measurement")]
        constraints = [
            models.CheckConstraint(
                condition=Q(review_state="suggested") | (Q(reviewed_by__isnull=False) & Q(reviewed_at__isnull=False)),
                name="measurement_review_has_reviewer",
            ),
            # Millimetres only with a pixel size: never a figure from a guess.
            models.CheckConstraint(
                condition=Q(hc_mm__isnull=True) | Q(pixel_size_mm__gt=0),
                name="measurement_mm_needs_calibration",
            ),
            models.CheckConstraint(
                condition=Q(semi_major__isnull=True) | Q(semi_minor__isnull=True) | Q(semi_major__gte=F("semi_minor")),
                name="measurement_major_not_shorter",
            ),
        ]

    def __str__(self) -> str:
        return f"Measurement #{self.id} of image #{self.image_id}: {self.review_state}"

    @property
    def is_calibrated(self) -> bool:
        return self.pixel_size_mm is not None
