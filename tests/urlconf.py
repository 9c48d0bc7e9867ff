"""Walk the project's URLconf, so tests that must cover every route also cover routes added later."""

from __future__ import annotations

from collections.abc import Iterator

from django.urls import URLPattern, URLResolver, get_resolver


def all_routes(patterns=None, prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    """(route, pattern) of every URL pattern, with its include prefixes joined."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            yield from all_routes(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern


def fill_route(route: str, kwargs: dict) -> str:
    """The path of a route with its <int:...> kwargs filled in."""
    for name, value in kwargs.items():
        route = route.replace(f"<int:{name}>", str(value))
    return "/" + route
