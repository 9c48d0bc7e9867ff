"""The OpenAPI schema class (a module of its own: it imports DRF's views, which import settings)."""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import get_doc


class ApiAutoSchema(AutoSchema):
    """Names nested ``InputSerializer``s after their view (``PatientListCreateApi.InputSerializer``
    → ``PatientListCreateInput``), so that the many nested serializers get distinct components."""

    def get_serializer_name(self, serializer, direction):
        qualname = serializer.__class__.__qualname__
        if "." in qualname:
            outer, inner = qualname.split(".")[-2:]
            return outer.removesuffix("Api").removesuffix("Serializer") + inner.removesuffix("Serializer")
        return super().get_serializer_name(serializer, direction)

    def get_description(self):
        # inspect.getdoc falls back to a base class's docstring: a view without its own would be described
        # by ApiView's ("Every API view derives from this class"), which says nothing about the operation.
        if self.view.__class__.__doc__ is None:
            method = getattr(self.view, getattr(self.view, "action", None) or self.method.lower(), None)
            return get_doc(method) if method else ""
        return super().get_description()

    def _get_parameters(self):
        parameters = super()._get_parameters()
        filters = getattr(getattr(self.view, "filterset_class", None), "base_filters", {})
        for parameter in (p for p in parameters if p["in"] == "query"):
            schema = parameter.get("schema", {})
            # No query parameter may be empty (fetalsite.core.api_views): say so for the free-text ones.
            if schema.get("type") == "string" and "enum" not in schema:
                schema.setdefault("minLength", 1)
            elif schema.get("type") == "array":
                schema.setdefault("minItems", 1)
            # A filter whose schema is set by @extend_schema_field (IdFilter) loses its help text: restore it.
            help_text = filters[parameter["name"]].extra.get("help_text") if parameter["name"] in filters else None
            if help_text and not parameter.get("description"):
                parameter["description"] = str(help_text)
        return parameters

    def get_operation(self, *args, **kwargs):
        # Examples are real answers recorded by the tests, not the ones written beside the code.
        from fetalsite.core.api_examples import attach_recorded_examples

        operation = super().get_operation(*args, **kwargs)
        return None if operation is None else attach_recorded_examples(operation)

    def _map_basic_serializer(self, serializer, direction):
        # Input serializers refuse undeclared keys with a 400 (fetalsite.core.api_input): say so.
        from fetalsite.core.api_input import StrictInputSerializer

        schema = super()._map_basic_serializer(serializer, direction)
        if direction == "request" and isinstance(serializer, StrictInputSerializer):
            schema["additionalProperties"] = False
        return schema
