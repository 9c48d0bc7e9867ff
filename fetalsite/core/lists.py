"""The base of every list API: the selector scopes, the FilterSet narrows and orders, the paginator pages."""

from __future__ import annotations

from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import generics

from fetalsite.core.api_views import ApiView


class FilteredListApi(ApiView, generics.GenericAPIView):
    """Subclasses set ``filterset_class`` and a ``get_queryset`` that calls a clinic-scoped selector."""

    filter_backends = [DjangoFilterBackend]

    def list_response(self, serializer_class):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(serializer_class(page, many=True).data)
