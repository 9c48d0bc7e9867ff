"""The API's output shape for a head measurement: the measurement API, the image API (patients) and the webhook
payloads all serialize with this, so the three cannot drift apart."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from biometry.models import Measurement
from biometry.presentation import current_ellipse_json, gestational_summary

_PX = "In display pixels, always."
_MM = "In millimetres; null when not calibrated (never a figure from a guess)."


class EllipseOutputSerializer(serializers.Serializer):
    cx = serializers.FloatField(help_text="Centre, x (column), display pixels from the left.")
    cy = serializers.FloatField(help_text="Centre, y (row), display pixels from the top.")
    semi_major = serializers.FloatField(help_text="Half the long axis (OFD / 2), pixels.")
    semi_minor = serializers.FloatField(help_text="Half the short axis (BPD / 2), pixels.")
    angle_deg = serializers.FloatField(help_text="The long axis's direction, degrees from +x towards +y, [0, 180).")


class GrowthOutputSerializer(serializers.Serializer):
    calibrated = serializers.BooleanField()
    hc_mm = serializers.FloatField(allow_null=True, help_text="The HC used below; null with `ga_reason`.")
    ga_from_hc_days = serializers.FloatField(allow_null=True, help_text="Gestational age estimated from HC, days.")
    ga_from_hc = serializers.CharField(allow_null=True, help_text="The same as weeks+days, e.g. `20+3`.")
    ga_reason = serializers.CharField(allow_blank=True, help_text="Why there is no estimate; empty when there is.")
    study_ga_days = serializers.IntegerField(allow_null=True, help_text="The study's own gestational age, days.")
    zscore = serializers.FloatField(allow_null=True, help_text="The HC's z-score for the study's gestational age.")
    centile = serializers.FloatField(allow_null=True, help_text="The HC's centile (0 to 100) for that age.")
    centile_reason = serializers.CharField(allow_blank=True, help_text="Why there is no centile; empty when there is.")
    ga_source = serializers.CharField()
    centile_source = serializers.CharField()


class MeasurementOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    image = serializers.IntegerField(source="image_id")
    job = serializers.IntegerField(source="job_id")
    model_version = serializers.CharField(source="job.model_version", help_text="The segmentation model's name.")
    review_state = serializers.ChoiceField(
        choices=Measurement.ReviewState.choices,
        help_text="`suggested` (the model's ellipse, not yet reviewed), `accepted`, `adjusted` (a clinician's "
        "ellipse) or `rejected`.",
    )
    ellipse = serializers.SerializerMethodField(help_text="The current ellipse; null when none was found.")
    model_ellipse = EllipseOutputSerializer(allow_null=True, help_text="What the model found; never changes.")
    hc_px = serializers.FloatField(allow_null=True, help_text=f"Head circumference (Ramanujan). {_PX}")
    bpd_px = serializers.FloatField(allow_null=True, help_text=f"Biparietal diameter (short axis). {_PX}")
    ofd_px = serializers.FloatField(allow_null=True, help_text=f"Occipito-frontal diameter (long axis). {_PX}")
    hc_mm = serializers.FloatField(allow_null=True, help_text=_MM)
    bpd_mm = serializers.FloatField(allow_null=True, help_text=_MM)
    ofd_mm = serializers.FloatField(allow_null=True, help_text=_MM)
    calibrated = serializers.BooleanField(source="is_calibrated", help_text="False: not calibrated, pixels only.")
    pixel_size_mm = serializers.FloatField(allow_null=True, help_text="The pixel size the millimetres used.")
    calibration_source = serializers.CharField(
        allow_blank=True, help_text="`dicom`, `upload` or `drawn`; empty when not calibrated."
    )
    flags = serializers.ListField(
        child=serializers.CharField(),
        help_text="Why it needs review: `empty`, `tiny`, `border`, `poor_fit`, `hc_implausible`, `not_brain`, "
        "`plane_uncertain` (docs/biometry.md).",
    )
    needs_review = serializers.BooleanField(help_text="Any flag set.")
    fit_iou = serializers.FloatField(allow_null=True, help_text="Overlap of the model's mask and its ellipse.")
    inference_ms = serializers.FloatField(allow_null=True, help_text="The network alone.")
    total_ms = serializers.FloatField(allow_null=True, help_text="Preprocessing, network and ellipse fit.")
    runtime = serializers.CharField(allow_blank=True, help_text="`keras` or `litert`.")
    created_at = serializers.DateTimeField()
    reviewed_by = serializers.CharField(source="reviewed_by.username", allow_null=True, default=None)
    reviewed_at = serializers.DateTimeField(allow_null=True)
    review_comment = serializers.CharField(allow_blank=True)
    growth = serializers.SerializerMethodField(
        help_text="Gestational age from HC and the HC's centile, only from a calibrated HC a clinician accepted "
        "or adjusted; otherwise null figures and the reason."
    )

    @extend_schema_field(EllipseOutputSerializer(allow_null=True))
    def get_ellipse(self, measurement: Measurement) -> dict | None:
        return current_ellipse_json(measurement)

    @extend_schema_field(GrowthOutputSerializer())
    def get_growth(self, measurement: Measurement) -> dict:
        return GrowthOutputSerializer(gestational_summary(measurement, measurement.image.study)).data
