"""Every 413 answers `{"detail", "code": "too_large"}` and nothing else: `fields` is for validation errors
(and the MRN conflicts) only, as docs/api.md says; a multi-file upload names the too-large part in `detail`."""

from __future__ import annotations

import json

from django.core.files.uploadedfile import SimpleUploadedFile

from patients.models import UltrasoundImage
from tests.images import png_bytes


def _upload(client, study, *blobs: bytes, **extra):
    files = [SimpleUploadedFile(f"scan-{i}.png", data, content_type="image/png") for i, data in enumerate(blobs)]
    return client.post(f"/api/v1/studies/{study.id}/images/", {"file": files}, format="multipart", **extra)


class TestTooLarge:
    def test_one_file_over_the_limit(self, api_client, study, settings):
        settings.UPLOAD_MAX_BYTES = 100

        response = _upload(api_client, study, png_bytes(seed=3))

        assert response.status_code == 413
        assert set(response.json()) == {"detail", "code"}
        assert response.json()["code"] == "too_large"
        assert response.json()["detail"].startswith("The file is larger than the ")

    def test_a_multi_file_upload_names_the_too_large_part_in_detail(self, api_client, study, settings, model_version):
        small, large = png_bytes(width=4, height=4, seed=1), png_bytes(width=64, height=64, seed=2)
        settings.UPLOAD_MAX_BYTES = len(small)

        response = _upload(api_client, study, small, large)

        assert response.status_code == 413
        assert set(response.json()) == {"detail", "code"}
        assert response.json()["detail"].startswith("file[1]: The file is larger than the ")
        assert UltrasoundImage.objects.count() == 0

    def test_a_declared_body_over_the_upload_limit(self, api_client, study, settings):
        settings.UPLOAD_MAX_BYTES = 10

        response = _upload(api_client, study, b"x", CONTENT_LENGTH=str(50 * 1024 * 1024))

        assert response.status_code == 413
        assert set(response.json()) == {"detail", "code"}
        assert response.json()["code"] == "too_large"

    def test_a_json_body_over_the_limit(self, api_client, settings):
        settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
        body = json.dumps({"mrn": "x", "given_name": "y" * 5000, "family_name": "z"})

        response = api_client.post("/api/v1/patients/", data=body, content_type="application/json")

        assert response.status_code == 413
        assert set(response.json()) == {"detail", "code"}
