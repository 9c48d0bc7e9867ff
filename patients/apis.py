"""API for patients, studies and images: validate → one selector or service → serialize."""

from __future__ import annotations

import math

from django.conf import settings
from django.http import FileResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import BasePermission
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from biometry import selectors as biometry_selectors
from biometry.serializers import MeasurementOutputSerializer
from classifier import selectors as classifier_selectors
from classifier import services as classifier_services
from classifier.labels import FetalPlane
from classifier.models import Prediction
from classifier.serializers import JobOutputSerializer, PredictionOutputSerializer
from fetalsite.accounts.roles import user_can_review, user_is_integrator
from fetalsite.core.api_input import StrictInputSerializer, validate_empty_body
from fetalsite.core.api_schema import ApiAutoSchema
from fetalsite.core.api_utils import (
    IDEMPOTENCY_PARAMETER,
    READ_ERRORS,
    WRITE_ERRORS,
    ErrorSerializer,
    HasRequiredPerms,
    RequestTooLarge,
    content_length,
    error_responses,
    idempotent,
)
from fetalsite.core.api_views import ApiView
from fetalsite.core.cache_headers import IMAGE_CACHE_CONTROL
from fetalsite.core.lists import FilteredListApi
from fetalsite.core.ranges import ranged_file_response
from fetalsite.core.shown import note_patients
from patients import report, selectors, services
from patients.filters import ImageFilter, PatientFilter, StudyFilter
from patients.imaging import DISPLAY_MEDIA_TYPE, MEDIA_TYPES, media_type_of
from patients.models import Study, UltrasoundImage

PLAYBACK_MEDIA_TYPE = "video/mp4"  # a clip's video: H.264 in MP4, which every browser plays


class PatientOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    mrn = serializers.CharField()
    given_name = serializers.CharField()
    family_name = serializers.CharField()
    birth_date = serializers.DateField(allow_null=True)
    clinic = serializers.IntegerField(source="clinic_id")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class StudyOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    patient = serializers.IntegerField(source="patient_id")
    exam_date = serializers.DateField()
    gestational_age_weeks = serializers.IntegerField(allow_null=True)
    gestational_age_days = serializers.IntegerField(allow_null=True)
    notes = serializers.CharField(allow_blank=True)
    status = serializers.ChoiceField(choices=Study.Status.choices)
    study_instance_uid = serializers.CharField(
        allow_null=True,
        help_text="DICOM Study Instance UID, set by the first DICOM file or when the study is scheduled; "
        "null until then.",
    )
    accession_number = serializers.CharField(allow_blank=True, help_text="DICOM Accession Number; may be empty.")
    scheduled_date = serializers.DateField(
        allow_null=True, help_text="The day the exam is booked for; an open study with one is on the modality worklist."
    )
    requested_procedure = serializers.CharField(allow_blank=True, help_text="Shown on the modality worklist.")
    signed_by = serializers.CharField(
        source="signed_by.username",
        allow_null=True,
        help_text="The clinician who signed the study off (status COMPLETED); null while it is open.",
    )
    signed_at = serializers.DateTimeField(allow_null=True, help_text="When it was signed off; null while open.")
    created_by = serializers.CharField(source="created_by.username")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class ImageDicomOutputSerializer(serializers.Serializer):
    """What the DICOM file said about itself (docs/dicom.md)."""

    sop_instance_uid = serializers.CharField(help_text="SOP Instance UID: one image per UID in a clinic.")
    sop_class_uid = serializers.CharField()
    series_instance_uid = serializers.CharField()
    study_instance_uid = serializers.CharField()
    transfer_syntax_uid = serializers.CharField()
    manufacturer = serializers.CharField(allow_blank=True)
    model_name = serializers.CharField(allow_blank=True, help_text="Manufacturer's Model Name.")
    number_of_frames = serializers.IntegerField()
    frame_time_ms = serializers.FloatField(allow_null=True)
    pixel_spacing_x_mm = serializers.FloatField(
        allow_null=True, help_text="Physical Delta X of the ultrasound region in mm; null when not calibrated."
    )
    pixel_spacing_y_mm = serializers.FloatField(
        allow_null=True, help_text="Physical Delta Y of the ultrasound region in mm; null when not calibrated."
    )


class ImageOriginalOutputSerializer(serializers.Serializer):
    media_type = serializers.ChoiceField(choices=sorted(MEDIA_TYPES.values()), help_text="The uploaded file's type.")
    byte_size = serializers.IntegerField(help_text="Equals the image's `byte_size`.")
    sha256 = serializers.CharField(help_text="Equals the image's `sha256`: the downloaded bytes hash to it.")
    width = serializers.IntegerField(help_text="As the file's header gives it (before any EXIF orientation).")
    height = serializers.IntegerField(help_text="As the file's header gives it (before any EXIF orientation).")
    url = serializers.CharField(help_text="The bytes, unchanged, as an attachment.")


class ImageDisplayOutputSerializer(serializers.Serializer):
    media_type = serializers.ChoiceField(choices=[DISPLAY_MEDIA_TYPE], help_text="Always PNG.")
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    url = serializers.CharField()


class ImagePlaybackOutputSerializer(serializers.Serializer):
    media_type = serializers.ChoiceField(choices=[PLAYBACK_MEDIA_TYPE], help_text="Always H.264 in MP4.")
    url = serializers.CharField(help_text="The clip as a video any browser plays (8-bit, at most 1024 px).")


class ImageClipOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The cine loop (an image of kind `cine`) this still was taken from.")
    frame_index = serializers.IntegerField(help_text="Which of the clip's frames this still is, counted from 0.")


class FiniteFloatField(serializers.FloatField):
    """A float that is a number: DRF's FloatField takes "nan" and "inf" from a form field."""

    def to_internal_value(self, data) -> float:
        value = super().to_internal_value(data)
        if not math.isfinite(value):
            self.fail("invalid")
        return value


class RoundedFloatField(serializers.FloatField):
    """A probability to 4 decimals: what the model's float32 or the stored float16 can say, without their noise."""

    def to_representation(self, value) -> float:
        return round(float(value), 4)


class ClipKeyFrameOutputSerializer(serializers.Serializer):
    image_id = serializers.IntegerField(
        allow_null=True, help_text="The still made from this frame (reviewable like any image); null until stored."
    )
    frame_index = serializers.IntegerField(help_text="Counted from 0.")
    label = serializers.ChoiceField(choices=FetalPlane.choices, help_text="The plane the clip's analysis gave it.")
    confidence = RoundedFloatField(
        min_value=0, max_value=1, help_text="That plane's probability at this frame, to 4 decimals."
    )


class ImageExclusionOutputSerializer(serializers.Serializer):
    reason = serializers.ChoiceField(choices=UltrasoundImage.ExclusionReason.choices)
    by = serializers.CharField(help_text="The clinician who excluded it.")
    at = serializers.DateTimeField()


class ImageOutputSerializer(serializers.Serializer):
    """An uploaded image. Two files: the `original` (the uploaded bytes, unchanged) and the `display`
    rendition (PNG, upright, 8-bit, at most 4096 px on the long side, no metadata) that pages show and
    the classifier reads.

    A `cine` image is a clip (a multi-frame DICOM, MP4, AVI or MOV): its `display` is its first frame,
    `playback` a video of it, and `frames/` what the model said of every frame. A clip has no prediction of its
    own: its `key_frames`, the best frame of each plane, are stored as stills (with `clip` set) and classified
    and reviewed like any image."""

    id = serializers.IntegerField()
    study = serializers.IntegerField(source="study_id")
    kind = serializers.ChoiceField(
        choices=UltrasoundImage.Kind.choices, help_text="`still`, or `cine` for a clip of several frames."
    )
    frame_count = serializers.SerializerMethodField(help_text="A clip's number of frames; null for a still.")
    frame_rate = serializers.SerializerMethodField(
        help_text="A clip's frames per second; null for a still, or a clip that does not say."
    )
    duration_s = serializers.SerializerMethodField(help_text="A clip's length in seconds; null for a still.")
    clip = serializers.SerializerMethodField(help_text="For a key frame: the clip and frame it was taken from.")
    key_frames = serializers.SerializerMethodField(
        help_text="For a clip: per plane, its best frame (the most confident of those its review rule does not "
        "flag), from the clip's latest analysis; empty for a still, or a clip not analysed yet."
    )
    playback = serializers.SerializerMethodField(help_text="For a clip: the video to play; null for a still.")
    original_filename = serializers.CharField(allow_blank=True, help_text="The client's file name, for display.")
    format = serializers.ChoiceField(choices=UltrasoundImage.Format.choices, help_text="The uploaded file's format.")
    width = serializers.IntegerField(help_text="The display rendition's width (as `display.width`).")
    height = serializers.IntegerField(help_text="The display rendition's height (as `display.height`).")
    pixel_size_mm = serializers.FloatField(
        allow_null=True,
        help_text="Millimetres per display pixel (square pixels), which measurements in mm use; null when the image "
        "is not calibrated (it is then measured in pixels only).",
    )
    pixel_size_source = serializers.ChoiceField(
        choices=UltrasoundImage.PixelSizeSource.choices,
        allow_blank=True,
        help_text="Where the pixel size came from: `dicom` (the file's ultrasound region calibration), `upload` "
        "(`pixel_size_mm` given with the upload) or `drawn` (a known distance drawn on the image); empty when none.",
    )
    byte_size = serializers.IntegerField(help_text="Size of the uploaded bytes (the original).")
    sha256 = serializers.CharField(help_text="SHA-256 of the uploaded bytes (the original), hex.")
    uploaded_by = serializers.CharField(source="uploaded_by.username")
    uploaded_at = serializers.DateTimeField()
    file_url = serializers.SerializerMethodField(help_text="The display rendition on the web pages (people).")
    download_url = serializers.SerializerMethodField(help_text="The display rendition (PNG) through the API.")
    heatmap_url = serializers.SerializerMethodField(
        help_text="The model's heatmap (PNG) through the API, made on the first request: a GET may answer 202 with "
        "`Retry-After` first. Null while the image has no prediction, and for a clip (its key frames have theirs)."
    )
    original = serializers.SerializerMethodField(
        help_text="The uploaded bytes, kept unchanged; null for images uploaded before originals were kept."
    )
    display = serializers.SerializerMethodField(help_text="The display rendition, always PNG.")
    dicom = serializers.SerializerMethodField(help_text="The DICOM file's facts; null for other formats.")
    job = serializers.SerializerMethodField()
    prediction = serializers.SerializerMethodField()
    review_state = serializers.SerializerMethodField(
        help_text="Where the image stands: `pending` (no prediction yet), `suggested` (the model's label, not yet "
        "reviewed), `confirmed`, `corrected`, `not_a_plane`, or `excluded` (by a clinician; it then counts nowhere)."
    )
    not_plane_reason = serializers.SerializerMethodField(
        help_text="For `not_a_plane`: `other_anatomy`, `maternal`, `non_fetal` or `unusable_quality`; else empty."
    )
    excluded = serializers.SerializerMethodField(
        help_text="Who excluded the image from the study's summary and report, when and why; null when included."
    )
    measurements = serializers.SerializerMethodField(
        help_text="The head measurements of a brain plane (one per segmentation model), oldest first; empty for "
        "other images and until measured. `GET /measurements/{id}/` reads one, `POST .../review/` reviews it."
    )

    @extend_schema_field(serializers.ChoiceField(choices=selectors.IMAGE_REVIEW_STATES))
    def get_review_state(self, image) -> str:
        return selectors.image_review_state(image)

    def get_not_plane_reason(self, image) -> str:
        prediction = classifier_selectors.image_latest_prediction(image)
        return prediction.not_plane_reason if prediction else ""

    @extend_schema_field(ImageExclusionOutputSerializer(allow_null=True))
    def get_excluded(self, image) -> dict | None:
        if not image.is_excluded:
            return None
        return {"reason": image.excluded_reason, "by": image.excluded_by.username, "at": image.excluded_at}

    def get_file_url(self, image) -> str:
        return reverse("image-file", args=[image.id])

    def get_download_url(self, image) -> str:
        return reverse("api-image-file", args=[image.id])

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_heatmap_url(self, image) -> str | None:
        if image.is_cine or classifier_selectors.image_latest_prediction(image) is None:
            return None
        return reverse("api-image-heatmap", args=[image.id])

    @extend_schema_field(ImageOriginalOutputSerializer(allow_null=True))
    def get_original(self, image) -> dict | None:
        if not image.original:
            return None
        return {
            "media_type": media_type_of(image.original.name),
            "byte_size": image.byte_size,
            "sha256": image.sha256,
            "width": image.original_width,
            "height": image.original_height,
            "url": reverse("api-image-original", args=[image.id]),
        }

    @extend_schema_field(ImageDisplayOutputSerializer())
    def get_display(self, image) -> dict:
        url = reverse("api-image-file", args=[image.id])
        return {"media_type": DISPLAY_MEDIA_TYPE, "width": image.width, "height": image.height, "url": url}

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_frame_count(self, image) -> int | None:
        return image.frame_count if image.is_cine else None

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_frame_rate(self, image) -> float | None:
        return image.frame_rate if image.is_cine else None

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_duration_s(self, image) -> float | None:
        duration = image.duration_s if image.is_cine else None
        return round(duration, 3) if duration is not None else None

    @extend_schema_field(ImageClipOutputSerializer(allow_null=True))
    def get_clip(self, image) -> dict | None:
        if image.clip_id is None:
            return None
        return {"id": image.clip_id, "frame_index": image.clip_frame_index}

    @extend_schema_field(ClipKeyFrameOutputSerializer(many=True))
    def get_key_frames(self, image) -> list[dict]:
        timeline = classifier_selectors.cine_timeline(image)
        return ClipKeyFrameOutputSerializer(timeline.key_frames if timeline else [], many=True).data

    @extend_schema_field(ImagePlaybackOutputSerializer(allow_null=True))
    def get_playback(self, image) -> dict | None:
        if not image.is_cine or not image.playback:
            return None
        return {"media_type": PLAYBACK_MEDIA_TYPE, "url": reverse("api-image-playback", args=[image.id])}

    @extend_schema_field(ImageDicomOutputSerializer(allow_null=True))
    def get_dicom(self, image) -> dict | None:
        instance = getattr(image, "dicom", None)  # a reverse one-to-one: absent for a PNG, JPEG, BMP or TIFF
        return ImageDicomOutputSerializer(instance).data if instance is not None else None

    @extend_schema_field(JobOutputSerializer(allow_null=True))
    def get_job(self, image) -> dict | None:
        job = classifier_selectors.image_latest_job(image)
        return JobOutputSerializer(job).data if job else None

    @extend_schema_field(PredictionOutputSerializer(allow_null=True))
    def get_prediction(self, image) -> dict | None:
        prediction = classifier_selectors.image_latest_prediction(image)
        return PredictionOutputSerializer(prediction).data if prediction else None

    @extend_schema_field(MeasurementOutputSerializer(many=True))
    def get_measurements(self, image) -> list[dict]:
        return MeasurementOutputSerializer(biometry_selectors.image_measurements(image), many=True).data


# ---- Patients ----------------------------------------------------------------------------------


class PatientListCreateApi(FilteredListApi):
    """Your clinic's patients (search by MRN or name), and registering a new one."""

    permission_classes = [HasRequiredPerms]
    required_perms = {"GET": ["patients.view_patient"], "POST": ["patients.add_patient"]}
    filterset_class = PatientFilter

    class InputSerializer(StrictInputSerializer):
        mrn = serializers.CharField(max_length=64, help_text="Medical record number, unique within your clinic.")
        given_name = serializers.CharField(max_length=100)
        family_name = serializers.CharField(max_length=100)
        birth_date = serializers.DateField(required=False, allow_null=True)

    def get_queryset(self):
        return selectors.patient_list(user=self.request.user)

    @extend_schema(
        operation_id="patients_list",
        summary="List your clinic's patients",
        responses={200: PatientOutputSerializer(many=True), **error_responses(400, 401, 403, 429)},
    )
    def get(self, request):
        return self.list_response(PatientOutputSerializer)

    @extend_schema(
        operation_id="patients_create",
        summary="Register a patient",
        parameters=[IDEMPOTENCY_PARAMETER],
        request=InputSerializer,
        responses={201: PatientOutputSerializer, **error_responses(400, 401, 403, 409, 413, 415, 422, 429)},
    )
    @idempotent
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        patient = services.patient_create(created_by=request.user, **serializer.validated_data)
        response = Response(PatientOutputSerializer(patient).data, status=status.HTTP_201_CREATED)
        response["Location"] = reverse("api-patient", args=[patient.id])
        return response


class PatientDetailApi(ApiView):
    permission_classes = [HasRequiredPerms]
    required_perms = {"GET": ["patients.view_patient"], "PATCH": ["patients.change_patient"]}

    class InputSerializer(StrictInputSerializer):
        mrn = serializers.CharField(max_length=64, required=False)
        given_name = serializers.CharField(max_length=100, required=False)
        family_name = serializers.CharField(max_length=100, required=False)
        birth_date = serializers.DateField(required=False, allow_null=True)

    @extend_schema(
        operation_id="patients_retrieve",
        summary="Read a patient",
        responses={200: PatientOutputSerializer, **error_responses(*READ_ERRORS)},
    )
    def get(self, request, patient_id: int):
        patient = selectors.patient_get(user=request.user, patient_id=patient_id)
        return Response(PatientOutputSerializer(patient).data)

    @extend_schema(
        operation_id="patients_partial_update",
        summary="Correct a patient's details",
        request=InputSerializer,
        responses={200: PatientOutputSerializer, **error_responses(*WRITE_ERRORS, 409)},
    )
    def patch(self, request, patient_id: int):
        patient = selectors.patient_get(user=request.user, patient_id=patient_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        patient = services.patient_update(patient=patient, updated_by=request.user, **serializer.validated_data)
        return Response(PatientOutputSerializer(patient).data)


class _MrnSerializer(serializers.Serializer):
    # The MRN in a by-MRN path is checked as the body's `mrn` is on registration (length, no NUL, trimmed).
    mrn = serializers.CharField(max_length=64)


def _path_mrn(raw: str) -> str:
    serializer = _MrnSerializer(data={"mrn": raw})
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data["mrn"]


MRN_PATH_PARAMETER = OpenApiParameter(
    "mrn",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description="The MRN, percent-encoded (it may hold `/`, spaces or any other character; in Python "
    '`urllib.parse.quote(mrn, safe="")`).',
)


class PatientByMrnApi(ApiView):
    """Find your clinic's patient by MRN, or register the patient unless the MRN is registered (create-or-get)."""

    permission_classes = [HasRequiredPerms]
    required_perms = {"GET": ["patients.view_patient"], "PUT": ["patients.add_patient"]}

    class InputSerializer(StrictInputSerializer):
        given_name = serializers.CharField(max_length=100)
        family_name = serializers.CharField(max_length=100)
        birth_date = serializers.DateField(required=False, allow_null=True)

    @extend_schema(
        operation_id="patients_by_mrn_retrieve",
        summary="Find a patient by MRN",
        description="Your clinic's patient with this MRN; 404 when your clinic has none.",
        parameters=[MRN_PATH_PARAMETER],
        responses={200: PatientOutputSerializer, **error_responses(400, 401, 403, 404, 429)},
    )
    def get(self, request, mrn: str):
        patient = selectors.patient_get_by_mrn(user=request.user, mrn=_path_mrn(mrn))
        note_patients(request, [patient.id])
        return Response(PatientOutputSerializer(patient).data)

    @extend_schema(
        operation_id="patients_by_mrn_update",
        summary="Register a patient by MRN unless registered (create-or-get)",
        description="Safe to repeat: the first call registers the patient (201, `Location` names it); every "
        "later one with the same details answers 200 with that patient and changes nothing. Other details for a "
        "registered MRN answer 409 `patient_details_differ`, naming each differing field in `fields`, and change "
        "nothing either. `birth_date` left out counts as null.",
        parameters=[MRN_PATH_PARAMETER, IDEMPOTENCY_PARAMETER],
        request=InputSerializer,
        responses={
            201: OpenApiResponse(PatientOutputSerializer, description="Registered now."),
            200: OpenApiResponse(PatientOutputSerializer, description="Registered before with these details."),
            **error_responses(400, 401, 403, 409, 413, 415, 422, 429),
        },
    )
    @idempotent
    def put(self, request, mrn: str):
        mrn = _path_mrn(mrn)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        patient, created = services.patient_get_or_create(created_by=request.user, mrn=mrn, **serializer.validated_data)
        if not created:
            return Response(PatientOutputSerializer(patient).data)
        response = Response(PatientOutputSerializer(patient).data, status=status.HTTP_201_CREATED)
        response["Location"] = reverse("api-patient", args=[patient.id])
        return response


# ---- Studies -----------------------------------------------------------------------------------


class StudyListCreateApi(FilteredListApi):
    """Your clinic's studies (by patient, status, exam date range), and opening a new one."""

    permission_classes = [HasRequiredPerms]
    required_perms = {"GET": ["patients.view_study"], "POST": ["patients.add_study"]}
    filterset_class = StudyFilter

    class InputSerializer(StrictInputSerializer):
        patient = serializers.IntegerField(min_value=1, help_text="The id of a patient of your clinic.")
        exam_date = serializers.DateField()
        gestational_age_weeks = serializers.IntegerField(
            required=False,
            allow_null=True,
            min_value=4,
            max_value=44,
            help_text="With `gestational_age_days`, or alone for whole weeks (days are then 0).",
        )
        gestational_age_days = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=6)
        notes = serializers.CharField(required=False, allow_blank=True, max_length=5000, default="")
        accession_number = serializers.CharField(
            required=False,
            allow_blank=True,
            max_length=16,
            default="",
            help_text="DICOM SH: unique in your clinic when given.",
        )
        scheduled_date = serializers.DateField(
            required=False, allow_null=True, help_text="Today or later; puts the open study on the modality worklist."
        )
        requested_procedure = serializers.CharField(required=False, allow_blank=True, max_length=64, default="")

    def get_queryset(self):
        return selectors.study_list(user=self.request.user)

    @extend_schema(
        operation_id="studies_list",
        summary="List your clinic's studies",
        responses={200: StudyOutputSerializer(many=True), **error_responses(400, 401, 403, 429)},
    )
    def get(self, request):
        return self.list_response(StudyOutputSerializer)

    @extend_schema(
        operation_id="studies_create",
        summary="Open a study for a patient",
        parameters=[IDEMPOTENCY_PARAMETER],
        request=InputSerializer,
        responses={
            201: StudyOutputSerializer,
            **error_responses(
                400,
                401,
                403,
                404,
                409,
                413,
                415,
                422,
                429,
            ),
        },
    )
    @idempotent
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        patient = selectors.patient_get(user=request.user, patient_id=data.pop("patient"))
        study = services.study_create(patient=patient, created_by=request.user, **data)
        response = Response(StudyOutputSerializer(study).data, status=status.HTTP_201_CREATED)
        response["Location"] = reverse("api-study", args=[study.id])
        return response


class StudyDetailApi(ApiView):
    permission_classes = [HasRequiredPerms]
    required_perms = {"GET": ["patients.view_study"], "PATCH": ["patients.change_study"]}

    class InputSerializer(StrictInputSerializer):
        exam_date = serializers.DateField(required=False)
        gestational_age_weeks = serializers.IntegerField(
            required=False,
            allow_null=True,
            min_value=4,
            max_value=44,
            help_text="With `gestational_age_days`, or alone for whole weeks (days are then 0).",
        )
        gestational_age_days = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=6)
        notes = serializers.CharField(required=False, allow_blank=True, max_length=5000)
        accession_number = serializers.CharField(
            required=False, allow_blank=True, max_length=16, help_text="DICOM SH: unique in your clinic when given."
        )
        scheduled_date = serializers.DateField(
            required=False, allow_null=True, help_text="Today or later; puts the open study on the modality worklist."
        )
        requested_procedure = serializers.CharField(required=False, allow_blank=True, max_length=64)

    @extend_schema(
        operation_id="studies_retrieve",
        summary="Read a study",
        responses={200: StudyOutputSerializer, **error_responses(*READ_ERRORS)},
    )
    def get(self, request, study_id: int):
        study = selectors.study_get(user=request.user, study_id=study_id)
        return Response(StudyOutputSerializer(study).data)

    @extend_schema(
        operation_id="studies_partial_update",
        summary="Correct a study's exam date, gestational age, notes or schedule",
        request=InputSerializer,
        responses={200: StudyOutputSerializer, **error_responses(*WRITE_ERRORS)},
    )
    def patch(self, request, study_id: int):
        study = selectors.study_get(user=request.user, study_id=study_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        study = services.study_update(study=study, updated_by=request.user, **serializer.validated_data)
        return Response(StudyOutputSerializer(study).data)


class CanSignOff(BasePermission):
    """Checked on the study once it is found: sign-off and reopening are a clinician's (the service checks it too)."""

    message = "Only clinicians can sign studies off or reopen them."

    def has_object_permission(self, request, view, obj) -> bool:
        return user_can_review(request.user)


OPEN_ITEMS_409 = (
    "`study_has_open_items`: images await review (`extra.unreviewed`) or classification (`extra.pending`), or "
    "planes are not confirmed (`extra.missing`), and `acknowledged` was not true; nothing changed."
)


class StudySignOffApi(ApiView):
    """A clinician signs the study off: it becomes read-only (every write to it answers 409 `study_signed_off`)
    until a clinician reopens it. Signing a signed-off study changes nothing."""

    permission_classes = [HasRequiredPerms, CanSignOff]
    required_perms = {"POST": ["patients.change_study"]}

    class InputSerializer(StrictInputSerializer):
        acknowledged = serializers.BooleanField(
            required=False,
            default=False,
            help_text="True when the clinician has seen the open items (unreviewed or pending images, planes not "
            "confirmed) and signs off anyway; without it, such a study answers 409 `study_has_open_items`.",
        )

    @extend_schema(
        operation_id="studies_sign_off",
        summary="Sign a study off (clinicians only)",
        request=InputSerializer,
        responses={
            200: StudyOutputSerializer,
            **error_responses(400, 401, 403, 404, 413, 415, 429),
            409: OpenApiResponse(response=ErrorSerializer, description=OPEN_ITEMS_409),
        },
    )
    def post(self, request, study_id: int):
        study = selectors.study_get(user=request.user, study_id=study_id)
        self.check_object_permissions(request, study)  # another clinic's study is a 404 before any 403
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        study = services.study_sign_off(study=study, signed_by=request.user, **serializer.validated_data)
        return Response(StudyOutputSerializer(study).data)


class StudyReopenApi(ApiView):
    """A clinician reopens a signed-off study; the reason is kept in the study's history."""

    permission_classes = [HasRequiredPerms, CanSignOff]
    required_perms = {"POST": ["patients.change_study"]}

    class InputSerializer(StrictInputSerializer):
        reason = serializers.CharField(
            max_length=services.REOPEN_REASON_MAX, help_text="Why the study is reopened; kept in its history."
        )

    @extend_schema(
        operation_id="studies_reopen",
        summary="Reopen a signed-off study (clinicians only)",
        request=InputSerializer,
        responses={
            200: StudyOutputSerializer,
            **error_responses(400, 401, 403, 404, 413, 415, 429),
            409: OpenApiResponse(
                response=ErrorSerializer, description="`study_not_signed`: the study is open; nothing to reopen."
            ),
        },
    )
    def post(self, request, study_id: int):
        study = selectors.study_get(user=request.user, study_id=study_id)
        self.check_object_permissions(request, study)  # another clinic's study is a 404 before any 403
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        study = services.study_reopen(study=study, reopened_by=request.user, **serializer.validated_data)
        return Response(StudyOutputSerializer(study).data)


class StudyCompleteApi(StudySignOffApi):
    """Deprecated since 1.4.0: the sign-off (`POST /studies/{id}/sign-off/`) under its old name, for clinicians
    only; an empty body signs off only a study with nothing open."""

    @extend_schema(
        operation_id="studies_complete",
        summary="Sign a study off (deprecated: use sign-off/)",
        deprecated=True,
        request=StudySignOffApi.InputSerializer,
        responses={
            200: StudyOutputSerializer,
            **error_responses(400, 401, 403, 404, 413, 415, 429),
            409: OpenApiResponse(response=ErrorSerializer, description=OPEN_ITEMS_409),
        },
    )
    def post(self, request, study_id: int):
        return super().post(request, study_id)


# ---- Images ------------------------------------------------------------------------------------


class ImageBatchOutputSerializer(serializers.Serializer):
    class ResultSerializer(serializers.Serializer):
        created = serializers.BooleanField(help_text="False when these bytes were already in the study.")
        image = ImageOutputSerializer()

    results = ResultSerializer(many=True)


UPLOAD_RESULT = PolymorphicProxySerializer(
    component_name="ImageUploadResult",
    serializers=[ImageOutputSerializer, ImageBatchOutputSerializer],
    resource_type_field_name=None,
)


class ImageUploadApi(ApiView):
    """Upload one or several images (repeat the `file` part) to an open study.

    One file answers with the image (202 while it is classified, 200 when the same bytes were already
    in the study: same id, nothing queued). Several files answer with `{"results": [...]}`; every
    file is checked first, so one bad file stores nothing.

    A cine loop (an MP4, AVI or MOV video, or a multi-frame DICOM file) is one image of kind `cine`, whose
    frames the worker classifies (`frames/`) and whose best frame of each plane becomes a key frame (a still).
    A clip is refused (400, nothing stored) over `CINE_MAX_FRAMES` frames (`cine_too_many_frames`) or
    `CINE_MAX_DURATION_S` seconds (`cine_too_long`), when it cannot be read (`cine_corrupt`), or when its
    container or codec cannot be decoded (`video_unsupported`)."""

    permission_classes = [HasRequiredPerms]
    required_perms = {"POST": ["patients.add_ultrasoundimage"]}
    parser_classes = [MultiPartParser]  # files only; every other body is JSON (settings.REST_FRAMEWORK)

    class InputSerializer(StrictInputSerializer):
        file = serializers.ListField(
            child=serializers.FileField(allow_empty_file=True),
            min_length=1,
            max_length=settings.UPLOAD_MAX_FILES_PER_REQUEST,
            help_text="PNG, JPEG, BMP or TIFF, a DICOM file of the study's patient (docs/dicom.md), or a cine "
            f"loop: an MP4, AVI or MOV video or a multi-frame DICOM file, at most {settings.CINE_MAX_FRAMES} frames "
            f"and {settings.CINE_MAX_DURATION_S:g} s; repeat the part to send several images.",
        )
        pixel_size_mm = FiniteFloatField(
            required=False,
            min_value=services.PIXEL_SIZE_MIN_MM,
            max_value=services.PIXEL_SIZE_MAX_MM,
            help_text="One pixel of the uploaded file in millimetres (square pixels), when you know it; the image is "
            "then calibrated (`pixel_size_source` `upload`; per display pixel if the display rendition is "
            "shrunk). A DICOM file's own region calibration is used without it, and one that differs by more "
            "than 1% is refused (400, nothing stored). With several files, it is every file's.",
        )

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        # Before anything reads the body (the Idempotency-Key's fingerprint does): refuse a huge one unread.
        max_body = settings.UPLOAD_MAX_BYTES * settings.UPLOAD_MAX_FILES_PER_REQUEST + 1024 * 1024
        if content_length(request.META) > max_body:
            raise RequestTooLarge()

    @extend_schema(
        operation_id="studies_images_create",
        summary="Upload images to a study",
        parameters=[IDEMPOTENCY_PARAMETER],
        request={"multipart/form-data": InputSerializer},
        responses={
            202: OpenApiResponse(
                UPLOAD_RESULT, description="New images, queued for classification (one file: the image itself)."
            ),
            200: OpenApiResponse(
                UPLOAD_RESULT,
                description="These bytes (a DICOM file: these SOP Instance UIDs) were all already in the study.",
            ),
            **error_responses(
                400,
                401,
                403,
                404,
                409,
                413,
                415,
                422,
                429,
            ),
        },
    )
    @idempotent
    def post(self, request, study_id: int):
        study = selectors.study_get(user=request.user, study_id=study_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        uploads = serializer.validated_data["file"]
        results = services.image_upload_many(
            study=study,
            files=[(upload.read(), upload.name) for upload in uploads],
            uploaded_by=request.user,
            pixel_size_mm=serializer.validated_data.get("pixel_size_mm"),
        )
        created = any(result.created for result in results)
        response_status = status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK
        if len(results) == 1:
            image = selectors.image_get(user=request.user, image_id=results[0].image.id)
            return Response(ImageOutputSerializer(image).data, status=response_status)
        images = {image.id: image for image in selectors.image_list(user=request.user, study_id=study.id)}
        body = {"results": [{"created": r.created, "image": images[r.image.id]} for r in results]}
        return Response(ImageBatchOutputSerializer(body).data, status=response_status)


class ImageListApi(FilteredListApi):
    """Your clinic's images with their latest job and prediction; filter for the review worklist with
    `?needs_review=true&reviewed=false`."""

    permission_classes = [HasRequiredPerms]
    required_perms = {"GET": ["patients.view_ultrasoundimage"]}
    filterset_class = ImageFilter

    def get_queryset(self):
        return selectors.image_list(user=self.request.user)

    @extend_schema(
        operation_id="images_list",
        summary="List your clinic's images with their latest job and prediction",
        responses={200: ImageOutputSerializer(many=True), **error_responses(400, 401, 403, 429)},
    )
    def get(self, request):
        return self.list_response(ImageOutputSerializer)


class ImageDetailApi(ApiView):
    permission_classes = [HasRequiredPerms]
    required_perms = {"GET": ["patients.view_ultrasoundimage"]}

    @extend_schema(
        operation_id="images_retrieve",
        summary="Read an image with its latest job and prediction",
        responses={200: ImageOutputSerializer, **error_responses(*READ_ERRORS)},
    )
    def get(self, request, image_id: int):
        image = selectors.image_get(user=request.user, image_id=image_id)
        return Response(ImageOutputSerializer(image).data)


class ImageBytesRenderer(BaseRenderer):
    """Lets a client ask for ``Accept: image/*``; the bytes themselves go out as a FileResponse."""

    media_type = "image/*"
    format = "image"
    charset = None
    render_style = "binary"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


class ImageBytesSchema(ApiAutoSchema):
    """Errors are JSON whatever the client accepts; each 200 names its own media types."""

    def map_renderers(self, attribute: str) -> list:
        binary = {
            getattr(renderer, attribute) for renderer in self.view.renderer_classes if renderer.render_style == "binary"
        }
        return [value for value in super().map_renderers(attribute) if value not in binary]


class ImageBytesApi(ApiView):
    """A stored file of an image as an attachment, never sniffed as anything but its media type."""

    permission_classes = [HasRequiredPerms]
    required_perms = {"GET": ["patients.view_ultrasoundimage"]}
    renderer_classes = [JSONRenderer, ImageBytesRenderer]
    schema = ImageBytesSchema()

    @staticmethod
    def attachment(field_file, *, name: str) -> FileResponse:
        response = FileResponse(
            field_file.open("rb"), content_type=media_type_of(field_file.name), as_attachment=True, filename=name
        )
        response["X-Content-Type-Options"] = "nosniff"
        response["Cache-Control"] = IMAGE_CACHE_CONTROL
        return response

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if isinstance(response, Response):  # errors are JSON whatever the client accepts
            response.accepted_renderer = JSONRenderer()
            response.accepted_media_type = "application/json"
        return response


class ImageFileApi(ImageBytesApi):
    """The display rendition: the image's pixels upright, 8-bit, re-encoded as PNG without metadata, at
    most 4096 px on the long side; what the pages show and the classifier reads. Always `image/png`,
    whatever was uploaded: its bytes are not the uploaded ones (for those, see `original/`)."""

    @extend_schema(
        operation_id="images_file_retrieve",
        summary="Download an image's display rendition (PNG)",
        responses={
            (200, DISPLAY_MEDIA_TYPE): OpenApiResponse(
                OpenApiTypes.BINARY, description="The display rendition, as attachment `image-{id}.png`."
            ),
            **error_responses(*READ_ERRORS),
        },
    )
    def get(self, request, image_id: int):
        image = selectors.image_get(user=request.user, image_id=image_id)
        return self.attachment(image.file, name=f"image-{image.id}.png")


ORIGINAL_NOT_FOUND = OpenApiResponse(
    ErrorSerializer,
    description="No such image in your clinic (`not_found`; another clinic's image answers the same), or "
    "its original was not kept (`original_not_kept`: uploaded before originals were kept; `file/` still "
    "serves its display rendition).",
)


class ImageOriginalApi(ImageBytesApi):
    """The uploaded bytes, unchanged: their SHA-256 and size are the image's `sha256` and `byte_size`.

    They are not sanitised (metadata such as EXIF, and anything appended to the image, stay), so they
    go out only as an attachment with `X-Content-Type-Options: nosniff` and
    `Content-Security-Policy: sandbox`: treat them as untrusted input."""

    @extend_schema(
        operation_id="images_original_retrieve",
        summary="Download the bytes uploaded for an image, unchanged",
        responses={
            **{
                (200, media_type): OpenApiResponse(
                    OpenApiTypes.BINARY, description="The uploaded bytes, as attachment `image-{id}.{ext}`."
                )
                for media_type in sorted(set(MEDIA_TYPES.values()))
            },
            **error_responses(*READ_ERRORS),
            404: ORIGINAL_NOT_FOUND,
        },
    )
    def get(self, request, image_id: int):
        image = selectors.image_original_get(user=request.user, image_id=image_id)
        extension = image.original.name.rsplit(".", 1)[-1].lower()
        response = self.attachment(image.original, name=f"image-{image.id}.{extension}")
        response["Content-Security-Policy"] = "sandbox"  # should a browser ever render it: no script, no origin
        return response


class VideoBytesRenderer(ImageBytesRenderer):
    """Lets a client ask for ``Accept: video/mp4``; the bytes go out as a FileResponse."""

    media_type = PLAYBACK_MEDIA_TYPE
    format = "mp4"


RANGE_PARAMETER = OpenApiParameter(
    "Range",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="One byte range, `bytes=first-last`, `bytes=first-` or `bytes=-length`, for a player that seeks; "
    "without it (or with several ranges, or another unit) the whole file comes, 200.",
)


class ImagePlaybackApi(ImageBytesApi):
    """A clip as H.264 in MP4 (8-bit, at most 1024 px on the long side): made from the clip's frames when it
    was stored, for playing; the clip's own bytes are `original/`. Takes one byte range (206), as a video
    player asks when it seeks."""

    renderer_classes = [JSONRenderer, VideoBytesRenderer]

    @extend_schema(
        operation_id="images_playback_retrieve",
        summary="Download a clip's video (MP4)",
        parameters=[RANGE_PARAMETER],
        responses={
            (200, PLAYBACK_MEDIA_TYPE): OpenApiResponse(
                OpenApiTypes.BINARY, description="The clip's video, as attachment `image-{id}.mp4`."
            ),
            (206, PLAYBACK_MEDIA_TYPE): OpenApiResponse(
                OpenApiTypes.BINARY, description="The bytes of the range asked for (`Content-Range` says which)."
            ),
            **error_responses(*READ_ERRORS),
            404: OpenApiResponse(
                ErrorSerializer,
                description="No such image in your clinic (`not_found`; another clinic's image answers the same), "
                "the image is a still (`not_a_cine`), or the clip has no video (`playback_not_kept`).",
            ),
            416: OpenApiResponse(
                ErrorSerializer,
                description="The range starts past the end, or is malformed (`range_not_satisfiable`); "
                "`Content-Range: bytes */<size>` gives the size.",
            ),
        },
    )
    def get(self, request, image_id: int):
        image = selectors.clip_playback_get(user=request.user, image_id=image_id)
        response = ranged_file_response(
            request, image.playback.open("rb"), size=image.playback.size, content_type=PLAYBACK_MEDIA_TYPE
        )
        if response.status_code == status.HTTP_416_REQUESTED_RANGE_NOT_SATISFIABLE:
            # Errors are JSON here, as everywhere in the API; the size stays in Content-Range, as RFC 9110 asks.
            detail = {"detail": "The range asked for is not in the file.", "code": "range_not_satisfiable"}
            refusal = Response(detail, status=response.status_code)
            refusal["Content-Range"] = response["Content-Range"]
            return refusal
        response["Content-Disposition"] = f'attachment; filename="image-{image.id}.mp4"'
        response["X-Content-Type-Options"] = "nosniff"
        response["Cache-Control"] = IMAGE_CACHE_CONTROL
        return response


class HeatmapPreparingSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["preparing"])
    detail = serializers.CharField()
    retry_after = serializers.IntegerField(help_text="Seconds to wait before asking again (also `Retry-After`).")


HEATMAP_RETRY_AFTER_S = 1


class ImageHeatmapApi(ImageBytesApi):
    """The model's Grad-CAM heatmap blended over the image (PNG, at most the image's size): where the model
    looked for its answer. It is made the first time anyone asks for it: until it is ready the answer is
    `202 Accepted` with `Retry-After` (seconds); ask again then, until `200`. Every classified still has one
    (key frames too); an image not classified yet, or a cine clip, answers 404."""

    @extend_schema(
        operation_id="images_heatmap_retrieve",
        summary="Download an image's heatmap (PNG), made on first request",
        responses={
            (200, DISPLAY_MEDIA_TYPE): OpenApiResponse(
                OpenApiTypes.BINARY, description="The heatmap, as attachment `heatmap-{id}.png`."
            ),
            202: OpenApiResponse(
                HeatmapPreparingSerializer,
                description="Being made (this request queued it, or an earlier one did): ask again after "
                "`Retry-After` seconds.",
            ),
            **error_responses(*READ_ERRORS),
            404: OpenApiResponse(
                ErrorSerializer,
                description="No such image in your clinic (`not_found`; another clinic's image answers the same), "
                "or the image has no heatmap: not classified yet, or a cine clip (`no_heatmap`).",
            ),
        },
    )
    def get(self, request, image_id: int):
        image = selectors.image_get(user=request.user, image_id=image_id)
        prediction = classifier_services.image_heatmap_request(image=image, requested_by=request.user)
        if not prediction.heatmap:
            body = {
                "status": "preparing",
                "detail": "The heatmap is being made; ask again shortly.",
                "retry_after": HEATMAP_RETRY_AFTER_S,
            }
            return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Retry-After": str(HEATMAP_RETRY_AFTER_S)})
        return self.attachment(prediction.heatmap, name=f"heatmap-{image.id}.png")


class PdfRenderer(ImageBytesRenderer):
    """Lets a client ask for ``Accept: application/pdf``; the report's bytes go out as they are."""

    media_type = report.REPORT_MEDIA_TYPE
    format = "pdf"


class StudyReportApi(ImageBytesApi):
    """A signed-off study's report: one A4 page of PDF with the clinic, patient and exam, each standard plane's
    state with the images a clinician confirmed and who reviewed them, who signed and when, the model version
    and the decision-support disclaimer. Excluded and not-a-plane images are counted, not shown. The same
    report as the study page's "Download report (PDF)"; made afresh on each request, so a study reopened and
    signed again gives the new one."""

    # Bytes like an image's files (errors JSON whatever the client accepts), of a study.
    required_perms = {"GET": ["patients.view_study"]}
    renderer_classes = [JSONRenderer, PdfRenderer]

    @extend_schema(
        operation_id="studies_report_retrieve",
        summary="Download a signed-off study's report (PDF)",
        responses={
            (200, report.REPORT_MEDIA_TYPE): OpenApiResponse(
                OpenApiTypes.BINARY, description="The report, as attachment `study-{id}-report.pdf`."
            ),
            **error_responses(*READ_ERRORS),
            409: OpenApiResponse(
                ErrorSerializer, description="The study is not signed off (`study_not_signed`): no report yet."
            ),
        },
    )
    def get(self, request, study_id: int):
        study = selectors.study_get(user=request.user, study_id=study_id)
        return report.report_response(report.study_report_pdf(study=study, user=request.user), study=study)


class ClipFramesOutputSerializer(serializers.Serializer):
    image = serializers.IntegerField(source="image.id", help_text="The clip.")
    frame_count = serializers.IntegerField(source="frames.frame_count")
    frame_rate = serializers.FloatField(
        source="image.frame_rate", allow_null=True, help_text="Frames per second; null when the clip does not say."
    )
    class_labels = serializers.ListField(
        child=serializers.ChoiceField(choices=FetalPlane.choices),
        source="frames.class_labels",
        help_text="The planes, in the order of each row of `probabilities`.",
    )
    probabilities = serializers.SerializerMethodField(
        help_text="One row per frame: each plane's probability, in `class_labels` order, to 4 decimals (they are "
        "stored as 16-bit floats, so about 3 significant digits are exact)."
    )
    flags = serializers.SerializerMethodField(
        help_text="One per frame: true where the model's review rule flags the frame (confidence under the "
        "model's review threshold, or the frame unlike the training images)."
    )
    labels = serializers.SerializerMethodField(help_text="One per frame: its most probable plane.")
    key_frames = ClipKeyFrameOutputSerializer(
        source="timeline.key_frames",
        many=True,
        help_text="Per plane, its best unflagged frame, as the clip's `key_frames`.",
    )
    model_version = serializers.SerializerMethodField(help_text="`name:version` of the model that ran.")
    inference_ms = serializers.FloatField(
        source="frames.inference_ms", help_text="Decoding, preprocessing and prediction of every frame."
    )

    @extend_schema_field(serializers.ListField(child=serializers.ListField(child=serializers.FloatField())))
    def get_probabilities(self, clip) -> list[list[float]]:
        rounded = RoundedFloatField()
        return [[rounded.to_representation(value) for value in row] for row in clip.frames.probability_rows()]

    def get_flags(self, clip) -> list[bool]:
        return clip.frames.flag_list()

    @extend_schema_field(serializers.ListField(child=serializers.ChoiceField(choices=FetalPlane.choices)))
    def get_labels(self, clip) -> list[str]:
        return clip.frames.frame_labels()

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_model_version(self, clip) -> str | None:
        version = clip.frames.job.model_version
        return f"{version.name}:{version.version}" if version else None


class ImageFramesApi(ApiView):
    """What the model said of every frame of a clip (an image of kind `cine`), from the clip's latest job."""

    permission_classes = [HasRequiredPerms]
    required_perms = {"GET": ["patients.view_ultrasoundimage"]}

    @extend_schema(
        operation_id="images_frames_retrieve",
        summary="A clip's per-frame planes and key frames",
        responses={
            200: ClipFramesOutputSerializer,
            **error_responses(*READ_ERRORS, 409),
            404: OpenApiResponse(
                ErrorSerializer,
                description="No such image in your clinic (`not_found`; another clinic's image answers the same), "
                "or the image is a still (`not_a_cine`).",
            ),
            409: OpenApiResponse(
                ErrorSerializer,
                description="The clip is not analysed yet (`not_classified`): its latest job is queued, running or "
                "failed. Wait for the job (`job` in the image) and ask again.",
            ),
        },
    )
    def get(self, request, image_id: int):
        clip = selectors.clip_frames_get(user=request.user, image_id=image_id)
        return Response(ClipFramesOutputSerializer(clip).data)


# ---- Reviews ------------------------------------------------------------------------------------


class CanReviewPredictions(BasePermission):
    """Checked on the image once it is found: clinicians (review rights) only."""

    message = "Only clinicians can review predictions."

    def has_object_permission(self, request, view, obj) -> bool:
        return user_can_review(request.user)


class PredictionReviewApi(ApiView):
    """A clinician confirms or corrects the label of the image's newest prediction (`label`), or says the image is
    not a standard fetal plane (`not_plane_reason`): send exactly one of the two.

    The model's own label stays as it was; every review is kept in the image's history."""

    permission_classes = [HasRequiredPerms, CanReviewPredictions]
    required_perms = {"POST": ["classifier.view_prediction"]}

    class InputSerializer(StrictInputSerializer):
        label = serializers.ChoiceField(
            choices=FetalPlane.choices,
            required=False,
            help_text="The plane: the model's to confirm it, another to correct it.",
        )
        not_plane_reason = serializers.ChoiceField(
            choices=Prediction.NotPlaneReason.choices,
            required=False,
            help_text="Instead of a label: why the image is not one of the standard planes.",
        )
        comment = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")

    @extend_schema(
        operation_id="images_review",
        summary="Review an image's prediction (clinicians only)",
        request=InputSerializer,
        responses={
            200: PredictionOutputSerializer,
            **error_responses(
                400,
                401,
                403,
                404,
                409,
                413,
                415,
                429,
            ),
        },
    )
    def post(self, request, image_id: int):
        image = selectors.image_get(user=request.user, image_id=image_id)
        self.check_object_permissions(request, image)  # another clinic's image is a 404 before any 403
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        prediction = classifier_services.image_review(
            image=image, reviewed_by=request.user, **serializer.validated_data
        )
        return Response(PredictionOutputSerializer(prediction).data)


class ImageExcludeApi(ApiView):
    """A clinician excludes an image from the study's plane summary and report (wrong patient, test image,
    other); it keeps its prediction, history and audit trail, and a clip's key frames go with it."""

    permission_classes = [HasRequiredPerms, CanReviewPredictions]
    required_perms = {"POST": ["patients.view_ultrasoundimage"]}

    class InputSerializer(StrictInputSerializer):
        reason = serializers.ChoiceField(choices=UltrasoundImage.ExclusionReason.choices)
        comment = serializers.CharField(
            required=False,
            allow_blank=True,
            max_length=services.EXCLUDE_COMMENT_MAX,
            default="",
            help_text="Kept as the history record's reason.",
        )

    @extend_schema(
        operation_id="images_exclude",
        summary="Exclude an image from the study's summary and report (clinicians only)",
        request=InputSerializer,
        responses={200: ImageOutputSerializer, **error_responses(400, 401, 403, 404, 409, 413, 415, 429)},
    )
    def post(self, request, image_id: int):
        image = selectors.image_get(user=request.user, image_id=image_id)
        self.check_object_permissions(request, image)  # another clinic's image is a 404 before any 403
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.image_exclude(image=image, excluded_by=request.user, **serializer.validated_data)
        return Response(ImageOutputSerializer(selectors.image_get(user=request.user, image_id=image.id)).data)


class ImageIncludeApi(ApiView):
    """A clinician takes an image's exclusion back; including an included image changes nothing."""

    permission_classes = [HasRequiredPerms, CanReviewPredictions]
    required_perms = {"POST": ["patients.view_ultrasoundimage"]}

    @extend_schema(
        operation_id="images_include",
        summary="Include an excluded image again (clinicians only)",
        request=None,
        responses={200: ImageOutputSerializer, **error_responses(400, 401, 403, 404, 409, 429)},
    )
    def post(self, request, image_id: int):
        image = selectors.image_get(user=request.user, image_id=image_id)
        self.check_object_permissions(request, image)
        validate_empty_body(request)
        services.image_include(image=image, included_by=request.user)
        return Response(ImageOutputSerializer(selectors.image_get(user=request.user, image_id=image.id)).data)


class CanCalibrateImages(BasePermission):
    message = "Integrations cannot calibrate images: give pixel_size_mm with the upload."

    def has_object_permission(self, request, view, obj) -> bool:
        return not user_is_integrator(request.user)


class ImageCalibrateApi(ApiView):
    """A sonographer or clinician calibrates an image by a known distance drawn on it: its two ends in display
    pixels (`[x, y]`, x to the right and y down from the top-left pixel's centre, as `display` is sized) and its
    true length. The pixel size becomes `distance_mm` over the line's length (`pixel_size_source` `drawn`), and
    the image's measurements are recomputed in millimetres. It replaces a pixel size given with the upload or
    drawn before; an image calibrated by its DICOM file is refused (409 `calibration_from_dicom`). A line shorter
    than a pixel, a point outside the image, or a pixel size outside 0.001–10 mm is a 400 naming the field. The
    change is in the image's history."""

    permission_classes = [HasRequiredPerms, CanCalibrateImages]
    required_perms = {"POST": ["patients.add_ultrasoundimage"]}

    class InputSerializer(StrictInputSerializer):
        start = serializers.ListField(
            child=FiniteFloatField(), min_length=2, max_length=2, help_text="One end of the line: `[x, y]`."
        )
        end = serializers.ListField(
            child=FiniteFloatField(), min_length=2, max_length=2, help_text="The other end: `[x, y]`."
        )
        distance_mm = FiniteFloatField(help_text="The line's true length in millimetres.")

    @extend_schema(
        operation_id="images_calibrate",
        summary="Calibrate an image by a known distance drawn on it (sonographers and clinicians)",
        request=InputSerializer,
        responses={200: ImageOutputSerializer, **error_responses(400, 401, 403, 404, 409, 413, 415, 429)},
    )
    def post(self, request, image_id: int):
        image = selectors.image_get(user=request.user, image_id=image_id)
        self.check_object_permissions(request, image)  # another clinic's image is a 404 before any 403
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.image_calibrate(image=image, calibrated_by=request.user, **serializer.validated_data)
        return Response(ImageOutputSerializer(selectors.image_get(user=request.user, image_id=image.id)).data)


class HistoryEntryOutputSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    actor = serializers.CharField(allow_null=True, help_text="Who made the change; null for the worker.")
    record = serializers.ChoiceField(choices=["image", "job", "prediction"])
    record_id = serializers.IntegerField()
    action = serializers.ChoiceField(choices=["created", "changed", "deleted"])
    changes = serializers.DictField(
        child=serializers.DictField(allow_empty=True),
        help_text='Each changed field: `{"from": old, "to": new}` (`from` is null on creation; foreign keys are ids).',
    )


class ImageHistoryApi(ApiView):
    permission_classes = [HasRequiredPerms]
    required_perms = {"GET": ["patients.view_ultrasoundimage"]}

    @extend_schema(
        operation_id="images_history_list",
        summary="Every change to an image, its jobs and predictions",
        responses={200: HistoryEntryOutputSerializer(many=True), **error_responses(*READ_ERRORS)},
    )
    def get(self, request, image_id: int):
        entries = selectors.image_change_list(user=request.user, image_id=image_id)
        return Response(HistoryEntryOutputSerializer(entries, many=True).data)
