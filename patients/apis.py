"""API for patients, studies and images: validate → one selector or service → serialize."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from fetalsite.api_utils import HasRequiredPerms
from patients import selectors, services


class PatientOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    mrn = serializers.CharField()
    given_name = serializers.CharField()
    family_name = serializers.CharField()
    birth_date = serializers.DateField(allow_null=True)
    clinic = serializers.IntegerField(source="clinic_id")
    created_at = serializers.DateTimeField()


class StudyOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    patient = serializers.IntegerField(source="patient_id")
    exam_date = serializers.DateField()
    gestational_age_weeks = serializers.IntegerField(allow_null=True)
    gestational_age_days = serializers.IntegerField(allow_null=True)
    notes = serializers.CharField()
    status = serializers.CharField()
    created_by = serializers.CharField(source="created_by.username")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class JobOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    image = serializers.IntegerField(source="image_id")
    model_version = serializers.SerializerMethodField()
    status = serializers.CharField()
    attempts = serializers.IntegerField()
    error = serializers.CharField()
    queued_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)

    def get_model_version(self, job) -> str | None:
        version = job.model_version
        return f"{version.name}:{version.version}" if version else None


class PredictionOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    label = serializers.CharField()
    confidence = serializers.FloatField()
    probabilities = serializers.DictField(child=serializers.FloatField())
    needs_review = serializers.BooleanField()
    inference_ms = serializers.FloatField()
    model_version = serializers.SerializerMethodField()
    reviewed_label = serializers.CharField()
    reviewed_by = serializers.CharField(source="reviewed_by.username", allow_null=True, default=None)
    reviewed_at = serializers.DateTimeField(allow_null=True)
    review_comment = serializers.CharField()
    final_label = serializers.CharField()

    def get_model_version(self, prediction) -> str | None:
        version = prediction.job.model_version
        return f"{version.name}:{version.version}" if version else None


def job_prediction(job):
    """The job's prediction, or None, without a query when it was select_related."""
    if job is None:
        return None
    try:
        return job.prediction
    except job.__class__.prediction.RelatedObjectDoesNotExist:
        return None


class ImageOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    study = serializers.IntegerField(source="study_id")
    original_filename = serializers.CharField()
    format = serializers.CharField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    byte_size = serializers.IntegerField()
    sha256 = serializers.CharField()
    uploaded_by = serializers.CharField(source="uploaded_by.username")
    uploaded_at = serializers.DateTimeField()
    file_url = serializers.SerializerMethodField()
    job = serializers.SerializerMethodField()
    prediction = serializers.SerializerMethodField()

    def get_file_url(self, image) -> str:
        return reverse("image-file", args=[image.id])

    def get_job(self, image) -> dict | None:
        job = selectors.latest_job(image)
        return JobOutputSerializer(job).data if job else None

    def get_prediction(self, image) -> dict | None:
        prediction = job_prediction(selectors.latest_job(image))
        return PredictionOutputSerializer(prediction).data if prediction else None


class PatientListCreateApi(generics.GenericAPIView):
    permission_classes = [HasRequiredPerms]
    required_perms = {"GET": ["patients.view_patient"], "POST": ["patients.add_patient"]}

    class FilterSerializer(serializers.Serializer):
        search = serializers.CharField(required=False, allow_blank=True, max_length=100)

    class InputSerializer(serializers.Serializer):
        mrn = serializers.CharField(max_length=64)
        given_name = serializers.CharField(max_length=100)
        family_name = serializers.CharField(max_length=100)
        birth_date = serializers.DateField(required=False, allow_null=True)

    @extend_schema(
        parameters=[OpenApiParameter("search", str, description="Part of the MRN, given or family name.")],
        responses={200: PatientOutputSerializer(many=True)},
    )
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        patients = selectors.patient_list(user=request.user, search=filters.validated_data.get("search", ""))
        page = self.paginate_queryset(patients)
        return self.get_paginated_response(PatientOutputSerializer(page, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: PatientOutputSerializer})
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        patient = services.patient_create(created_by=request.user, **serializer.validated_data)
        return Response(PatientOutputSerializer(patient).data, status=status.HTTP_201_CREATED)


class PatientDetailApi(APIView):
    permission_classes = [HasRequiredPerms]
    required_perms = {"GET": ["patients.view_patient"]}

    @extend_schema(responses={200: PatientOutputSerializer})
    def get(self, request, patient_id: int):
        patient = selectors.patient_get(user=request.user, patient_id=patient_id)
        return Response(PatientOutputSerializer(patient).data)


class StudyListCreateApi(generics.GenericAPIView):
    permission_classes = [HasRequiredPerms]
    required_perms = {"GET": ["patients.view_study"], "POST": ["patients.add_study"]}

    class FilterSerializer(serializers.Serializer):
        patient = serializers.IntegerField(required=False, min_value=1)
        status = serializers.ChoiceField(choices=["OPEN", "COMPLETED"], required=False)
        search = serializers.CharField(required=False, allow_blank=True, max_length=100)

    class InputSerializer(serializers.Serializer):
        patient = serializers.IntegerField(min_value=1)
        exam_date = serializers.DateField()
        gestational_age_weeks = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=45)
        gestational_age_days = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=6)
        notes = serializers.CharField(required=False, allow_blank=True, max_length=5000, default="")

    @extend_schema(parameters=[FilterSerializer], responses={200: StudyOutputSerializer(many=True)})
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        studies = selectors.study_list(user=request.user, filters=filters.validated_data)
        page = self.paginate_queryset(studies)
        return self.get_paginated_response(StudyOutputSerializer(page, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: StudyOutputSerializer})
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        patient = selectors.patient_get(user=request.user, patient_id=data.pop("patient"))
        study = services.study_create(patient=patient, created_by=request.user, **data)
        return Response(StudyOutputSerializer(study).data, status=status.HTTP_201_CREATED)


class StudyDetailApi(APIView):
    permission_classes = [HasRequiredPerms]
    required_perms = {"GET": ["patients.view_study"]}

    @extend_schema(responses={200: StudyOutputSerializer})
    def get(self, request, study_id: int):
        study = selectors.study_get(user=request.user, study_id=study_id)
        return Response(StudyOutputSerializer(study).data)


class ImageUploadApi(APIView):
    """Upload an image to a study; 202 while it is classified, 200 when the bytes were already there."""

    permission_classes = [HasRequiredPerms]
    required_perms = {"POST": ["patients.add_ultrasoundimage"]}
    parser_classes = [MultiPartParser, FormParser]

    class InputSerializer(serializers.Serializer):
        file = serializers.FileField(allow_empty_file=True)

    @extend_schema(
        request={"multipart/form-data": InputSerializer},
        responses={202: ImageOutputSerializer, 200: ImageOutputSerializer},
    )
    def post(self, request, study_id: int):
        study = selectors.study_get(user=request.user, study_id=study_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["file"]
        result = services.image_upload(study=study, data=upload.read(), filename=upload.name, uploaded_by=request.user)
        image = selectors.image_get(user=request.user, image_id=result.image.id)
        return Response(
            ImageOutputSerializer(image).data,
            status=status.HTTP_202_ACCEPTED if result.created else status.HTTP_200_OK,
        )


class ImageDetailApi(APIView):
    permission_classes = [HasRequiredPerms]
    required_perms = {"GET": ["patients.view_ultrasoundimage"]}

    @extend_schema(responses={200: ImageOutputSerializer})
    def get(self, request, image_id: int):
        image = selectors.image_get(user=request.user, image_id=image_id)
        return Response(ImageOutputSerializer(image).data)
