"""The base of every API view: query parameters are checked before the view runs."""

from __future__ import annotations

from rest_framework.views import APIView


class ApiView(APIView):
    """Every API view derives from this class; ``query_parameters`` names the view's own non-filter ones."""

    query_parameters: tuple[str, ...] = ()
