"""The base of every list API: the selector scopes, the FilterSet narrows and orders, the paginator pages."""

from __future__ import annotations

from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import generics

from fetalsite.core.api_views import ApiView


class FilteredListApi(ApiView, generics.GenericAPIView):
    """Subclasses set ``filterset_class`` and a ``get_queryset`` that calls a clinic-scoped selector.

    A ``GET`` accepts the FilterSet's filters (``ordering`` among them) and the paginator's ``limit`` and
    ``offset``, by the same names the schema lists; other methods accept none of them."""

    filter_backends = [DjangoFilterBackend]

    def accepted_query_parameters(self, method: str) -> tuple[str, ...]:
        accepted = super().accepted_query_parameters(method)
        if method not in ("GET", "HEAD"):
            return accepted
        filtered = any(issubclass(backend, DjangoFilterBackend) for backend in self.filter_backends)
        filterset_class = getattr(self, "filterset_class", None) if filtered else None
        filters = tuple(filterset_class.base_filters) if filterset_class is not None else ()
        pages = self.paginator.get_schema_operation_parameters(self) if self.paginator is not None else []
        return (*accepted, *filters, *(parameter["name"] for parameter in pages))

    def list_response(self, serializer_class):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(serializer_class(page, many=True).data)
