"""Small helpers shared by the API modules."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.permissions import BasePermission


def inline_serializer(*, name: str, fields: dict, data=None, **kwargs) -> serializers.Serializer:
    serializer_class = type(name, (serializers.Serializer,), fields)
    if data is not None:
        return serializer_class(data=data, **kwargs)
    return serializer_class(**kwargs)


class HasRequiredPerms(BasePermission):
    """Checks the view's ``required_perms`` (role rights) for the request's method."""

    message = "Your role does not allow this action."

    def has_permission(self, request, view) -> bool:
        perms = getattr(view, "required_perms", {})
        needed = perms.get(request.method, perms.get("*", []))
        return bool(request.user and request.user.is_authenticated and request.user.has_perms(needed))
