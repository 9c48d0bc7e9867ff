"""The site has an icon (issue 19, item 10): pages link the SVG, and /favicon.ico, which browsers ask for anyway,
redirects to it instead of logging a 404."""

from __future__ import annotations

from django.urls import reverse


def test_favicon_ico_redirects_to_the_svg_that_is_served(client, db):
    response = client.get("/favicon.ico")

    assert response.status_code == 301
    assert response["Location"] == "/static/img/favicon.svg"
    icon = client.get(response["Location"])
    assert icon.status_code == 200
    assert icon["Content-Type"].startswith("image/svg+xml")
    assert b"<svg" in b"".join(icon.streaming_content)


def test_pages_link_the_icon(client, sonographer):
    client.force_login(sonographer)

    html = client.get(reverse("home")).content.decode()

    assert '<link rel="icon" href="/static/img/favicon.svg" type="image/svg+xml">' in html
