"""Swagger UI works offline and under the CSP: every script it loads comes from this server."""

import re


def test_docs_page_loads_only_same_origin_scripts(client, settings):
    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    sources = re.findall(r'<script[^>]*src="([^"]+)"', html)
    assert sources and all(src.startswith("/") and not src.startswith("//") for src in sources), sources
    assert not re.search(r"<script(?![^>]*src=)[^>]*>\s*\S", html), "inline script would be blocked by the CSP"
    for src in sources:
        assert client.get(src).status_code == 200, src
