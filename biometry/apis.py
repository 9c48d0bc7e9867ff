"""API for head measurements: validate → one selector or service → serialize."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from biometry import selectors, services
from biometry.serializers import MeasurementOutputSerializer
from fetalsite.core.api_input import StrictInputSerializer
from fetalsite.core.api_utils import READ_ERRORS, HasRequiredPerms, error_responses
from fetalsite.core.api_views import ApiView


def _point() -> serializers.ListField:
    return serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2)


class MeasurementDetailApi(ApiView):
    permission_classes = [HasRequiredPerms]
    required_perms = {"GET": ["biometry.view_measurement"]}

    @extend_schema(
        operation_id="measurements_retrieve",
        summary="Read a head measurement",
        responses={200: MeasurementOutputSerializer, **error_responses(*READ_ERRORS)},
    )
    def get(self, request, measurement_id: int):
        measurement = selectors.measurement_get(user=request.user, measurement_id=measurement_id)
        return Response(MeasurementOutputSerializer(measurement).data)


class CanReviewMeasurements(BasePermission):
    """Checked on the measurement once it is found: clinicians (review rights) only."""

    message = "Only clinicians can review head measurements."

    def has_object_permission(self, request, view, obj) -> bool:
        return request.user.has_perm("biometry.review_measurement")


class MeasurementReviewApi(ApiView):
    """A clinician accepts the ellipse, adjusts it (`axis_ends`: the two OFD ends, then the two BPD ends),
    redraws it (`points`: two ends of one axis, then a point of the curve) or rejects it. Points are `[x, y]` in
    the display rendition's pixels. A measurement may be reviewed again, a rejected one too; the model's ellipse
    stays as it was, and every review is kept in the history. Bad points answer 400 and change nothing."""

    permission_classes = [HasRequiredPerms, CanReviewMeasurements]
    required_perms = {"POST": ["biometry.view_measurement"]}

    class InputSerializer(StrictInputSerializer):
        action = serializers.ChoiceField(choices=[(action, action) for action in services.REVIEW_ACTIONS])
        axis_ends = serializers.ListField(
            child=_point(),
            min_length=4,
            max_length=4,
            required=False,
            help_text="For `adjust`: [[x, y], [x, y]] of the OFD, then [[x, y], [x, y]] of the BPD.",
        )
        points = serializers.ListField(
            child=_point(),
            min_length=3,
            max_length=3,
            required=False,
            help_text="For `redraw`: two ends of one axis, then any point of the curve beside that axis.",
        )
        comment = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")

    @extend_schema(
        operation_id="measurements_review",
        summary="Review a head measurement (clinicians only)",
        request=InputSerializer,
        responses={200: MeasurementOutputSerializer, **error_responses(400, 401, 403, 404, 409, 413, 415, 429)},
    )
    def post(self, request, measurement_id: int):
        measurement = selectors.measurement_get(user=request.user, measurement_id=measurement_id)
        self.check_object_permissions(request, measurement)  # another clinic's measurement is a 404 before any 403
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        measurement = services.measurement_review(
            measurement=measurement, reviewed_by=request.user, **serializer.validated_data
        )
        return Response(MeasurementOutputSerializer(measurement).data)
