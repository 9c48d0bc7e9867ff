"""The OpenAPI schema class (a module of its own: it imports DRF's views, which import settings)."""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema


class ApiAutoSchema(AutoSchema):
    """Names nested ``InputSerializer``s after their view (``PatientListCreateApi.InputSerializer``
    → ``PatientListCreateInput``), so that the many nested serializers get distinct components."""

    def get_serializer_name(self, serializer, direction):
        qualname = serializer.__class__.__qualname__
        if "." in qualname:
            outer, inner = qualname.split(".")[-2:]
            return outer.removesuffix("Api").removesuffix("Serializer") + inner.removesuffix("Serializer")
        return super().get_serializer_name(serializer, direction)

    def _map_basic_serializer(self, serializer, direction):
        # Input serializers refuse undeclared keys with a 400 (fetalsite.core.api_input): say so.
        from fetalsite.core.api_input import StrictInputSerializer

        schema = super()._map_basic_serializer(serializer, direction)
        if direction == "request" and isinstance(serializer, StrictInputSerializer):
            schema["additionalProperties"] = False
        return schema
