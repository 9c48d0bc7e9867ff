"""Bad files through the API and the page: a clear 4xx, and no record, file or job left."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from classifier.models import ClassificationJob
from patients.models import UltrasoundImage
from tests.images import png_bytes

BAD_FILES = {
    "text": (b"patient notes, not pixels", "not an image"),
    "empty": (b"", "empty"),
    "truncated-png": (png_bytes()[:300], "damaged or truncated"),
}


def nothing_stored(media_root) -> bool:
    files = [p for p in media_root.rglob("*") if p.is_file()] if media_root.exists() else []
    return files == [] and not UltrasoundImage.objects.exists() and not ClassificationJob.objects.exists()


@pytest.mark.parametrize("kind", BAD_FILES)
def test_api_refuses_bad_files(api_client, study, media_root, kind):
    data, message = BAD_FILES[kind]
    response = api_client.post(
        f"/api/v1/studies/{study.id}/images/", {"file": SimpleUploadedFile("x.png", data)}, format="multipart"
    )
    assert response.status_code == 400
    body = response.json()
    assert message in body["detail"] and message in body["fields"]["file"][0]
    assert nothing_stored(media_root)


@pytest.mark.parametrize("kind", BAD_FILES)
def test_page_refuses_bad_files(client, sonographer, study, media_root, kind):
    data, message = BAD_FILES[kind]
    client.force_login(sonographer)
    response = client.post(
        f"/studies/{study.id}/upload/",
        {"file": SimpleUploadedFile("x.png", data)},
        HTTP_X_REQUESTED_WITH="fetch",  # the study page's script: the refusal is patients/_error.html
    )
    assert response.status_code == 400 and 'data-code="invalid"' in response.content.decode()
    assert message in response.content.decode()
    assert nothing_stored(media_root)


def test_api_upload_without_a_file_is_a_400(api_client, study):
    response = api_client.post(f"/api/v1/studies/{study.id}/images/", {}, format="multipart")
    assert response.status_code == 400 and "file" in response.json()["fields"]


def test_same_bytes_twice_give_200_and_the_same_image(api_client, study):
    url = f"/api/v1/studies/{study.id}/images/"
    first = api_client.post(url, {"file": SimpleUploadedFile("a.png", png_bytes())}, format="multipart")
    second = api_client.post(url, {"file": SimpleUploadedFile("b.png", png_bytes())}, format="multipart")
    assert (first.status_code, second.status_code) == (202, 200)
    assert first.json()["id"] == second.json()["id"]
