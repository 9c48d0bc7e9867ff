"""The base of every API view: no query parameter is ignored.

A query parameter the operation does not know, one given twice or one left empty answers 400 naming it,
so that a mistyped filter (``?needs_reviw=true``) can never return the unfiltered list. The check runs
after authentication, permissions and throttling: a caller without a token gets its 401, a role that may
not call the operation its 403, before anything is said about its parameters."""

from __future__ import annotations

from collections.abc import Iterable

from django.http import QueryDict
from rest_framework import exceptions
from rest_framework.views import APIView

from fetalsite.core.api_utils import UNKNOWN_QUERY_PARAMETER

REPEATED_QUERY_PARAMETER = "Give this parameter once."
EMPTY_QUERY_PARAMETER = "This parameter cannot be empty; leave it out instead."


def check_query_parameters(query: QueryDict, accepted: Iterable[str]) -> None:
    """400 naming each parameter that is not accepted, repeated or empty (the values' own checks come later)."""
    accepted = set(accepted)
    errors: dict[str, list[str]] = {}
    for name, values in query.lists():
        if name not in accepted:
            errors[name] = [UNKNOWN_QUERY_PARAMETER]
        elif len(values) > 1:
            errors[name] = [REPEATED_QUERY_PARAMETER]
        elif values[0] == "":
            errors[name] = [EMPTY_QUERY_PARAMETER]
    if errors:
        raise exceptions.ValidationError(errors)


class ApiView(APIView):
    """Every API view derives from this class (a test walks the URLconf to hold that).

    ``query_parameters`` names the view's own query parameters beyond its list's filters and pages;
    each must also be documented with an ``OpenApiParameter`` (a test compares them with the schema)."""

    query_parameters: tuple[str, ...] = ()

    def accepted_query_parameters(self, method: str) -> tuple[str, ...]:
        """The query parameters ``method`` accepts here (FilteredListApi adds its filters and pages)."""
        return self.query_parameters

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        check_query_parameters(request.query_params, self.accepted_query_parameters(request.method))
