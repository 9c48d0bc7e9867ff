"""API tokens: obtain with a password, rotate, revoke. Failures and uses are logged."""

from __future__ import annotations

import logging

from django.contrib.auth import authenticate
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response

from fetalsite.accounts import tokens
from fetalsite.core.api_input import StrictInputSerializer, validate_empty_body
from fetalsite.core.api_utils import ApiLoginRateThrottle, error_responses
from fetalsite.core.api_views import ApiView
from fetalsite.core.client_ip import client_ip

logger = logging.getLogger("fetalsite.api")


class TokenOutputSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Send it as `Authorization: Token <token>`.")


class TokenObtainApi(ApiView):
    """``POST``: exchange a username and password for the user's API token (the same token until it
    is rotated, revoked, expires or the password changes); only roles in API_TOKEN_ROLES get one.
    ``DELETE``: revoke your token (any owner)."""

    _login = False

    class InputSerializer(StrictInputSerializer):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(max_length=128, trim_whitespace=False)

    def initialize_request(self, request, *args, **kwargs):
        # Logging in needs no credentials, and a stale token in the headers must not block it.
        self._login = request.method == "POST"
        return super().initialize_request(request, *args, **kwargs)

    def get_authenticators(self):
        return [] if self._login else super().get_authenticators()

    def get_permissions(self):
        return [AllowAny()] if self._login else [IsAuthenticated()]

    def get_throttles(self):
        return [ApiLoginRateThrottle()] if self._login else super().get_throttles()

    def get_authenticate_header(self, request):
        return "Token"  # a wrong password is a 401 (DRF turns it into a 403 without this header)

    @extend_schema(
        operation_id="auth_token_create",
        summary="Get your API token",
        auth=[],
        request=InputSerializer,
        responses={
            200: TokenOutputSerializer,
            **error_responses(
                400,
                401,
                403,
                413,
                415,
                429,
            ),
        },
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = authenticate(request, **serializer.validated_data)
        if user is None:
            logger.warning(
                "API login failed for username %r from %s",
                serializer.validated_data["username"],
                client_ip(request) or "?",
            )
            raise AuthenticationFailed("Unable to log in with the given username and password.")
        token = tokens.token_get_or_create(user=user)
        return Response(TokenOutputSerializer({"token": token.key}).data, status=status.HTTP_200_OK)

    @extend_schema(
        operation_id="auth_token_destroy",
        summary="Revoke your API token",
        request=None,
        responses={
            204: OpenApiResponse(description="Revoked: the token no longer works."),
            # 403: a session without its CSRF token
            **error_responses(400, 401, 403, 429),
        },
    )
    def delete(self, request):
        validate_empty_body(request)
        tokens.token_revoke(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenRotateApi(ApiView):
    """Replace your token with a new one; the old one stops working at once."""

    permission_classes = [IsAuthenticated]  # the service refuses roles not in API_TOKEN_ROLES (403)

    @extend_schema(
        operation_id="auth_token_rotate",
        summary="Rotate your API token",
        request=None,
        responses={
            200: TokenOutputSerializer,
            **error_responses(400, 401, 403, 429),
        },
    )
    def post(self, request):
        validate_empty_body(request)
        token = tokens.token_rotate(user=request.user)
        return Response(TokenOutputSerializer({"token": token.key}).data)
