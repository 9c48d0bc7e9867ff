from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from simple_history.models import HistoricalRecords


class PatientQuerySet(models.QuerySet):
    def for_clinics(self, clinic_ids) -> PatientQuerySet:
        return self.filter(clinic_id__in=clinic_ids)


class Patient(models.Model):
    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, related_name="patients")
    mrn = models.CharField("MRN", max_length=64, help_text="Medical record number, unique within the clinic.")
    given_name = models.CharField(max_length=100)
    family_name = models.CharField(max_length=100)
    birth_date = models.DateField(null=True, blank=True)
    # Names and MRN folded (accents stripped, lower case) by the service that saves the patient, so that "zoe"
    # finds "Zoë" the same way on PostgreSQL and SQLite, without database extensions.
    search_text = models.CharField(max_length=300, blank=True, db_index=True, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    objects = PatientQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["clinic", "mrn"],
                name="patient_mrn_unique_per_clinic",
                violation_error_message="A patient with this MRN already exists in this clinic.",
            ),
            # "n-2024-0815" is the same record as "N-2024-0815": MRNs are compared without case.
            models.UniqueConstraint(
                "clinic",
                Lower("mrn"),
                name="patient_mrn_unique_per_clinic_any_case",
                violation_error_message="A patient with this MRN already exists in this clinic.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.family_name}, {self.given_name} [{self.mrn}] (#{self.id})"

    @property
    def full_name(self) -> str:
        return f"{self.given_name} {self.family_name}"


class StudyQuerySet(models.QuerySet):
    def for_clinics(self, clinic_ids) -> StudyQuerySet:
        return self.filter(patient__clinic_id__in=clinic_ids)


class Study(models.Model):
    class Status(models.TextChoices):
        OPEN = "OPEN", "Open"
        COMPLETED = "COMPLETED", "Signed off"

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="studies")
    exam_date = models.DateField()
    gestational_age_weeks = models.PositiveSmallIntegerField(null=True, blank=True)
    gestational_age_days = models.PositiveSmallIntegerField(null=True, blank=True)
    notes = models.TextField(blank=True, max_length=5000)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    # From DICOM (a file uploaded into the study, or one received for it): unique within the clinic, which the
    # services check under a lock on the clinic row (the clinic is the patient's, beyond a table constraint).
    study_instance_uid = models.CharField(
        "Study Instance UID",
        max_length=64,
        null=True,
        blank=True,
        db_index=True,
        help_text="Set from the first DICOM file.",
    )
    accession_number = models.CharField(max_length=64, blank=True, help_text="The DICOM Accession Number.")
    # The modality worklist (docs/dicom.md): an OPEN study with a scheduled date is offered to the clinic's
    # ultrasound machines, with its requested procedure, so they stamp its MRN, accession number and UID.
    scheduled_date = models.DateField(
        null=True, blank=True, help_text="The day the exam is booked for; puts the study on the modality worklist."
    )
    requested_procedure = models.CharField(
        max_length=64, blank=True, help_text="e.g. 'Second trimester anomaly scan' (DICOM LO, 64 characters)."
    )
    # Sign-off: a clinician completes the study (status COMPLETED), which makes it read-only until a clinician
    # reopens it with a reason (the reason is the history record's change reason).
    signed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    signed_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    objects = StudyQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "studies"
        constraints = [
            models.CheckConstraint(
                condition=Q(gestational_age_weeks__isnull=True) | Q(gestational_age_weeks__lte=45),
                name="study_gestational_weeks_0_45",
                violation_error_message="Gestational age must be between 0 and 45 weeks.",
            ),
            models.CheckConstraint(
                condition=Q(gestational_age_days__isnull=True) | Q(gestational_age_days__lte=6),
                name="study_gestational_days_0_6",
                violation_error_message="Gestational age days must be between 0 and 6.",
            ),
            models.CheckConstraint(
                condition=Q(gestational_age_days__isnull=True) | Q(gestational_age_weeks__isnull=False),
                name="study_gestational_days_need_weeks",
                violation_error_message="Give the gestational age weeks along with the days.",
            ),
        ]

    def __str__(self) -> str:
        return f"Study #{self.id} of {self.patient.mrn} on {self.exam_date}"

    @property
    def gestational_age(self) -> str:
        if self.gestational_age_weeks is None:
            return ""
        return f"{self.gestational_age_weeks}w{self.gestational_age_days or 0}d"


class UltrasoundImageQuerySet(models.QuerySet):
    def for_clinics(self, clinic_ids) -> UltrasoundImageQuerySet:
        return self.filter(study__patient__clinic_id__in=clinic_ids)


class UltrasoundImage(models.Model):
    class Format(models.TextChoices):
        PNG = "PNG", "PNG"
        JPEG = "JPEG", "JPEG"
        BMP = "BMP", "BMP"
        TIFF = "TIFF", "TIFF"
        DICOM = "DICOM", "DICOM"
        MP4 = "MP4", "MP4"
        AVI = "AVI", "AVI"
        MOV = "MOV", "MOV"

    class ExclusionReason(models.TextChoices):
        WRONG_PATIENT = "wrong_patient", "Wrong patient"
        TEST_IMAGE = "test_image", "Test image"
        OTHER = "other", "Other"

    class PixelSizeSource(models.TextChoices):
        DICOM = "dicom", "DICOM ultrasound region calibration"
        UPLOAD = "upload", "Given with the upload"
        DRAWN = "drawn", "Drawn on the image (a known distance)"

    class Kind(models.TextChoices):
        STILL = "still", "Still image"
        CINE = "cine", "Cine loop"

    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="images")
    kind = models.CharField(
        max_length=8,
        choices=Kind.choices,
        default=Kind.STILL,
        help_text="A still image, or a cine loop (a multi-frame DICOM or a video) whose frames are classified.",
    )
    # Two files under server-generated paths; the client's name is kept, sanitised, for display only.
    file = models.FileField(
        max_length=255,
        help_text="The display rendition: the pixels upright, 8-bit, re-encoded as PNG without metadata, "
        "at most 4096 px on the long side. Pages show it and the classifier reads it.",
    )
    original = models.FileField(
        max_length=255,
        null=True,
        blank=True,
        help_text="The uploaded bytes, unchanged (not sanitised). Empty: uploaded before originals were kept.",
    )
    original_filename = models.CharField(max_length=255, blank=True)
    sha256 = models.CharField(max_length=64, help_text="SHA-256 of the uploaded bytes (the original).")
    format = models.CharField(max_length=8, choices=Format.choices, help_text="The uploaded file's format.")
    width = models.PositiveIntegerField(help_text="The display rendition's width in pixels.")
    height = models.PositiveIntegerField(help_text="The display rendition's height in pixels.")
    byte_size = models.PositiveBigIntegerField(help_text="Size of the uploaded bytes (the original).")
    original_width = models.PositiveIntegerField(
        null=True, blank=True, help_text="The original's width as its header gives it (before EXIF orientation)."
    )
    original_height = models.PositiveIntegerField(
        null=True, blank=True, help_text="The original's height as its header gives it (before EXIF orientation)."
    )
    # A cine loop: its frames, their rate, and a rendition a browser plays (H.264 MP4); ``file`` is its first frame.
    frame_count = models.PositiveIntegerField(null=True, blank=True, help_text="A cine loop's number of frames.")
    frame_rate = models.FloatField(null=True, blank=True, help_text="A cine loop's frames per second.")
    playback = models.FileField(
        max_length=255, blank=True, help_text="A cine loop as H.264 MP4 for the browser (8-bit, at most 1024 px)."
    )
    # A key frame: a still made from one frame of a clip (the best of its plane), reviewable like any image.
    clip = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="key_frames",
        help_text="The cine loop this still was taken from.",
    )
    clip_frame_index = models.PositiveIntegerField(
        null=True, blank=True, help_text="The frame of the clip this still is, counted from 0."
    )
    # The size of one display pixel (square pixels), for measurements in millimetres; empty: not calibrated.
    pixel_size_mm = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.001), MaxValueValidator(10.0)],
        help_text="Millimetres per display pixel (square pixels); empty when the image is not calibrated.",
    )
    pixel_size_source = models.CharField(
        max_length=16,
        choices=PixelSizeSource.choices,
        blank=True,
        help_text="Where the pixel size came from; empty when not calibrated.",
    )
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    uploaded_at = models.DateTimeField(auto_now_add=True)
    # Excluded by a clinician (wrong patient, test image): kept with its history, but left out of the plane
    # summary and the report. Empty reason: not excluded.
    excluded_reason = models.CharField(max_length=16, choices=ExclusionReason.choices, blank=True)
    excluded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    excluded_at = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords()

    objects = UltrasoundImageQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["study", "sha256"],
                name="image_bytes_unique_per_study",
                violation_error_message="These exact bytes were already uploaded to this study.",
            ),
            # A retried clip job finds its key frames instead of making them twice.
            models.UniqueConstraint(
                fields=["clip", "clip_frame_index"],
                condition=Q(clip__isnull=False),
                name="image_key_frame_unique_per_clip_frame",
            ),
            models.CheckConstraint(
                condition=Q(excluded_reason="") | (Q(excluded_by__isnull=False) & Q(excluded_at__isnull=False)),
                name="image_exclusion_has_who_and_when",
            ),
            models.CheckConstraint(
                condition=Q(pixel_size_mm__isnull=True, pixel_size_source="")
                | (Q(pixel_size_mm__gt=0) & ~Q(pixel_size_source="")),
                name="image_pixel_size_has_source",
                violation_error_message="A pixel size needs its source, and a source its pixel size.",
            ),
            models.CheckConstraint(
                condition=Q(clip__isnull=True, clip_frame_index__isnull=True)
                | Q(clip__isnull=False, clip_frame_index__isnull=False),
                name="image_key_frame_has_frame_index",
            ),
        ]

    def __str__(self) -> str:
        return f"Image #{self.id} ({self.original_filename or self.format})"

    @property
    def clinic_id(self) -> int:
        return self.study.patient.clinic_id

    @property
    def is_excluded(self) -> bool:
        return bool(self.excluded_reason)

    @property
    def is_cine(self) -> bool:
        return self.kind == self.Kind.CINE

    @property
    def duration_s(self) -> float | None:
        if not self.frame_count or not self.frame_rate:
            return None
        return self.frame_count / self.frame_rate


class DicomInstance(models.Model):
    """The DICOM facts of an image uploaded or received as a DICOM file (its original is that file).

    A table of its own, not columns on every image: it carries the clinic, so that "one SOP Instance UID per
    clinic" is a database constraint (an image's clinic is two joins away), and the later cine and DICOMweb
    work reads and extends it without touching images that never were DICOM."""

    image = models.OneToOneField(UltrasoundImage, on_delete=models.PROTECT, related_name="dicom")
    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.PROTECT, related_name="+")
    sop_instance_uid = models.CharField("SOP Instance UID", max_length=64)
    sop_class_uid = models.CharField("SOP Class UID", max_length=64)
    series_instance_uid = models.CharField("Series Instance UID", max_length=64)
    study_instance_uid = models.CharField("Study Instance UID", max_length=64)
    transfer_syntax_uid = models.CharField("Transfer Syntax UID", max_length=64)
    manufacturer = models.CharField(max_length=64, blank=True)
    model_name = models.CharField(max_length=64, blank=True, help_text="Manufacturer's Model Name.")
    number_of_frames = models.PositiveIntegerField(default=1)
    frame_time_ms = models.FloatField(null=True, blank=True, help_text="Frame Time, in milliseconds.")
    pixel_spacing_x_mm = models.FloatField(
        null=True, blank=True, help_text="Physical Delta X of the ultrasound region, in mm; empty: not calibrated."
    )
    pixel_spacing_y_mm = models.FloatField(
        null=True, blank=True, help_text="Physical Delta Y of the ultrasound region, in mm; empty: not calibrated."
    )
    source = models.CharField(max_length=200, help_text='How it came: "upload" or the network peer.')
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["clinic", "sop_instance_uid"],
                name="dicom_sop_instance_unique_per_clinic",
                violation_error_message="This SOP Instance UID is already stored in this clinic.",
            ),
        ]

    def __str__(self) -> str:
        return f"DICOM {self.sop_instance_uid} (image #{self.image_id})"
