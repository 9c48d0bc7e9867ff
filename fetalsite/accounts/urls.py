"""The accounts app's routes: the token API (mounted under /api/v1/ by fetalsite.api_urls)."""

from django.urls import path

from fetalsite.accounts.apis import TokenObtainApi, TokenRotateApi

api_urlpatterns = [
    path("auth/token/", TokenObtainApi.as_view(), name="api-token"),
    path("auth/token/rotate/", TokenRotateApi.as_view(), name="api-token-rotate"),
]
