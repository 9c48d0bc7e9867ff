"""Two files per image (issue 17): the uploaded bytes, kept unchanged and downloadable at original/ with
the image's sha256 and size and their true media type, and the PNG display rendition at file/."""

from __future__ import annotations

import hashlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from patients.models import UltrasoundImage
from tests.api.conftest import upload
from tests.images import image_bytes


def _upload(client, study, data: bytes, name: str) -> dict:
    response = client.post(
        f"/api/v1/studies/{study.id}/images/", {"file": [SimpleUploadedFile(name, data)]}, format="multipart"
    )
    assert response.status_code == 202, response.content
    return response.json()


def _content(response) -> bytes:
    return b"".join(response.streaming_content)


FORMATS = [
    ("PNG", "image/png", "png"),
    ("JPEG", "image/jpeg", "jpg"),
    ("BMP", "image/bmp", "bmp"),
    ("TIFF", "image/tiff", "tif"),
]


@pytest.mark.parametrize(("fmt", "media_type", "extension"), FORMATS)
class TestImageOriginalApi:
    def test_downloads_the_uploaded_bytes_with_their_true_type(
        self, api_client, study, model_version, fmt, media_type, extension
    ):
        data = image_bytes(fmt, width=40, height=30)
        image = _upload(api_client, study, data, f"scan.{extension}")

        response = api_client.get(image["original"]["url"])

        downloaded = _content(response)
        assert response.status_code == 200
        assert downloaded == data
        assert hashlib.sha256(downloaded).hexdigest() == image["sha256"] == image["original"]["sha256"]
        assert len(downloaded) == image["byte_size"] == image["original"]["byte_size"]
        assert response["Content-Type"] == media_type == image["original"]["media_type"]
        assert response["Content-Disposition"] == f'attachment; filename="image-{image["id"]}.{extension}"'
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Content-Security-Policy"] == "sandbox"
        assert response["Cache-Control"] == "private, no-cache"
        assert (image["format"], image["original"]["width"], image["original"]["height"]) == (fmt, 40, 30)

    def test_the_display_rendition_is_always_png(self, api_client, study, model_version, fmt, media_type, extension):
        image = _upload(api_client, study, image_bytes(fmt, width=40, height=30), f"scan.{extension}")

        response = api_client.get(image["display"]["url"])

        assert response.status_code == 200
        assert response["Content-Type"] == "image/png"
        assert response["Content-Disposition"] == f'attachment; filename="image-{image["id"]}.png"'
        assert _content(response).startswith(b"\x89PNG\r\n\x1a\n")
        assert image["display"] == {
            "media_type": "image/png",
            "width": 40,
            "height": 30,
            "url": f"/api/v1/images/{image['id']}/file/",
        }
        assert (image["width"], image["height"], image["download_url"]) == (40, 30, image["display"]["url"])


class TestImageWithoutOriginal:
    """Images uploaded before this release have only the display rendition."""

    @pytest.fixture
    def legacy_image(self, study, model_version):
        image = upload(study)
        UltrasoundImage.objects.filter(id=image.id).update(original=None, original_width=None, original_height=None)
        return image

    def test_original_answers_404_original_not_kept(self, api_client, legacy_image):
        response = api_client.get(f"/api/v1/images/{legacy_image.id}/original/", HTTP_ACCEPT="image/*")

        assert response.status_code == 404
        assert response["Content-Type"] == "application/json"
        assert response.json()["code"] == "original_not_kept"

    def test_the_record_says_so_and_the_rendition_still_downloads(self, api_client, legacy_image):
        image = api_client.get(f"/api/v1/images/{legacy_image.id}/").json()
        response = api_client.get(image["display"]["url"])

        assert image["original"] is None
        assert response.status_code == 200 and response["Content-Type"] == "image/png"
