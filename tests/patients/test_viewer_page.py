"""The study page's image viewer as the server sends it (the browser test tests/e2e/test_viewer.py drives it):
the dialog and its controls, the vendored Panzoom served from our own static files with its version, licence and
checksum, and no inline script or style for the Content-Security-Policy."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from django.conf import settings
from django.urls import reverse

from patients.services import image_upload
from tests.images import png_bytes

VENDOR = Path(settings.BASE_DIR) / "static" / "vendor" / "panzoom"


def study_page(client, user, study) -> str:
    client.force_login(user)
    response = client.get(reverse("study-detail", args=[study.id]))
    assert response.status_code == 200
    return response.content.decode()


class TestViewerMarkup:
    def test_the_viewer_is_a_labelled_dialog_with_its_controls_and_shortcut_list(self, client, sonographer, study):
        html = study_page(client, sonographer, study)

        assert re.search(r'<dialog id="viewer" class="viewer" aria-labelledby="viewer-title"', html)
        for action in ("previous", "next", "compare", "help", "close", "zoom-in", "zoom-out", "fit", "reset"):
            assert f'data-action="{action}"' in html
        for name in ("brightness", "contrast", "invert", "heatmap", "opacity", "second"):
            assert f'name="{name}"' in html
        assert 'id="viewer-help"' in html and "Zoom in (OHIF)" in html
        assert 'class="heatmap-key-bar"' in html

    def test_the_scripts_are_our_own_static_files_and_nothing_inline(self, client, sonographer, study):
        image_upload(study=study, data=png_bytes(seed=3), filename="scan.png", uploaded_by=sonographer)

        html = study_page(client, sonographer, study)

        sources = re.findall(r'<script src="([^"]+)"', html)
        assert sources == [
            "/static/vendor/panzoom/panzoom.min.js",
            "/static/js/heatmap.js",
            "/static/js/viewer.js",
            "/static/js/study.js",
            "/static/js/measure.js",  # the head measurement's editor (issue 21)
        ]
        assert '<link rel="stylesheet" href="/static/css/viewer.css">' in html
        assert "<script>" not in html and "<style" not in html and " style=" not in html
        assert 'class="enlarge" href="/images/' in html  # without script, the link still opens the image


class TestVendoredPanzoom:
    def test_the_file_matches_the_checksum_and_version_its_readme_names(self):
        readme = (VENDOR / "README.md").read_text()
        script = (VENDOR / "panzoom.min.js").read_bytes()

        assert hashlib.sha256(script).hexdigest() in readme
        assert b"Panzoom 4.6.2" in script[:200] and "4.6.2" in readme
        assert "Permission is hereby granted, free of charge" in (VENDOR / "LICENSE").read_text()  # MIT
