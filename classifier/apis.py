"""API for jobs, predictions, reviews and model versions: validate → one selector or service → serialize."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from classifier import selectors, services
from classifier.filters import JobFilter, PredictionFilter
from classifier.serializers import JobOutputSerializer, PredictionOutputSerializer
from fetalsite.core.api_input import validate_empty_body
from fetalsite.core.api_utils import READ_ERRORS, HasRequiredPerms, error_responses
from fetalsite.core.api_views import ApiView
from fetalsite.core.lists import FilteredListApi


class JobListApi(FilteredListApi):
    """Your clinic's classification jobs; `?status=FAILED` finds the ones to look at."""

    permission_classes = [HasRequiredPerms]
    required_perms = {"GET": ["classifier.view_classificationjob"]}
    filterset_class = JobFilter

    def get_queryset(self):
        return selectors.job_list(user=self.request.user)

    @extend_schema(
        operation_id="jobs_list",
        summary="List your clinic's classification jobs",
        responses={200: JobOutputSerializer(many=True), **error_responses(400, 401, 403, 429)},
    )
    def get(self, request):
        return self.list_response(JobOutputSerializer)


class JobDetailApi(ApiView):
    permission_classes = [HasRequiredPerms]
    required_perms = {"GET": ["classifier.view_classificationjob"]}

    @extend_schema(
        operation_id="jobs_retrieve",
        summary="Read a classification job",
        responses={200: JobOutputSerializer, **error_responses(*READ_ERRORS)},
    )
    def get(self, request, job_id: int):
        job = selectors.job_get(user=request.user, job_id=job_id)
        return Response(JobOutputSerializer(job).data)


class JobRetryApi(ApiView):
    """Queue a failed job again with the model that is active now (the answer is the job that will run)."""

    permission_classes = [HasRequiredPerms]
    required_perms = {"POST": ["patients.add_ultrasoundimage"]}

    @extend_schema(
        operation_id="jobs_retry",
        summary="Retry a failed job",
        request=None,
        responses={
            202: JobOutputSerializer,
            **error_responses(
                400,
                401,
                403,
                404,
                409,
                429,
            ),
        },
    )
    def post(self, request, job_id: int):
        job = selectors.job_get(user=request.user, job_id=job_id)
        validate_empty_body(request)
        job = services.classification_job_retry(job=job, retried_by=request.user)
        return Response(JobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class PredictionListApi(FilteredListApi):
    """Your clinic's predictions, newest first."""

    permission_classes = [HasRequiredPerms]
    required_perms = {"GET": ["classifier.view_prediction"]}
    filterset_class = PredictionFilter

    def get_queryset(self):
        return selectors.prediction_list(user=self.request.user)

    @extend_schema(
        operation_id="predictions_list",
        summary="List your clinic's predictions",
        responses={200: PredictionOutputSerializer(many=True), **error_responses(400, 401, 403, 429)},
    )
    def get(self, request):
        return self.list_response(PredictionOutputSerializer)


class PredictionDetailApi(ApiView):
    permission_classes = [HasRequiredPerms]
    required_perms = {"GET": ["classifier.view_prediction"]}

    @extend_schema(
        operation_id="predictions_retrieve",
        summary="Read a prediction",
        responses={200: PredictionOutputSerializer, **error_responses(*READ_ERRORS)},
    )
    def get(self, request, prediction_id: int):
        prediction = selectors.prediction_get(user=request.user, prediction_id=prediction_id)
        return Response(PredictionOutputSerializer(prediction).data)


class ModelVersionOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    key = serializers.SerializerMethodField(help_text="`name:version`: how jobs and predictions name it.")
    name = serializers.CharField()
    version = serializers.CharField()
    sha256 = serializers.CharField(help_text="Of the artifact; checked when the worker loads it.")
    class_labels = serializers.ListField(child=serializers.CharField(), help_text="In the model's output order.")
    input_size = serializers.IntegerField()
    review_threshold = serializers.FloatField(help_text="Predictions below this confidence need review.")
    novelty_threshold = serializers.FloatField(
        allow_null=True,
        help_text="Images less similar than this to every training image need review; null for models "
        "without a novelty output.",
    )
    metrics = serializers.DictField(help_text="From the model card.")
    is_active = serializers.BooleanField(help_text="New uploads are classified by the active version.")
    registered_at = serializers.DateTimeField()

    def get_key(self, model_version) -> str:
        return f"{model_version.name}:{model_version.version}"


class ModelVersionListApi(FilteredListApi):
    """The registered model versions (the same for every clinic); one of them is active."""

    permission_classes = [HasRequiredPerms]
    required_perms = {"GET": ["classifier.view_modelversion"]}
    filter_backends = []

    def get_queryset(self):
        return selectors.model_version_list()

    @extend_schema(
        operation_id="model_versions_list",
        summary="List the registered model versions",
        responses={200: ModelVersionOutputSerializer(many=True), **error_responses(400, 401, 403, 429)},
    )
    def get(self, request):
        return self.list_response(ModelVersionOutputSerializer)


class ModelVersionDetailApi(ApiView):
    permission_classes = [HasRequiredPerms]
    required_perms = {"GET": ["classifier.view_modelversion"]}

    @extend_schema(
        operation_id="model_versions_retrieve",
        summary="Read a model version by `name:version`",
        parameters=[
            OpenApiParameter(
                "model_version",
                str,
                OpenApiParameter.PATH,
                description="`name:version`, as jobs and predictions show it (e.g. `fetalnet:1.0`).",
            )
        ],
        responses={200: ModelVersionOutputSerializer, **error_responses(*READ_ERRORS)},
    )
    def get(self, request, model_version: str):
        model_version = selectors.model_version_get(key=model_version)
        return Response(ModelVersionOutputSerializer(model_version).data)
