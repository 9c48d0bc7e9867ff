"""The study page's "Download original": the bytes uploaded or received (a .dcm, a PNG), unchanged, for the
image's own clinic only, with the API's headers, and recorded in the access log."""

from __future__ import annotations

import pytest
from django.urls import reverse

from fetalsite.audit.models import AccessLogEntry
from patients.models import UltrasoundImage
from patients.services import dicom_instance_receive, image_upload
from tests.dicom_samples import dicom_bytes
from tests.images import png_bytes

pytestmark = pytest.mark.django_db


def _content(response) -> bytes:
    return b"".join(response.streaming_content)


@pytest.fixture
def dicom_image(north, sonographer):
    data = dicom_bytes()
    image = dicom_instance_receive(clinic=north, data=data, received_by=sonographer, source="test").image
    return image, data


def test_a_received_dicom_downloads_byte_identical_from_the_study_page(client, sonographer, dicom_image):
    image, data = dicom_image
    client.force_login(sonographer)
    page = client.get(reverse("study-detail", args=[image.study_id])).content.decode()
    url = reverse("image-original", args=[image.id])
    assert f'href="{url}"' in page and "Download original" in page

    response = client.get(url)

    assert response.status_code == 200 and _content(response) == data
    assert response["Content-Type"] == "application/dicom"
    assert response["Content-Disposition"] == f'attachment; filename="image-{image.id}.dcm"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "sandbox"
    assert response["Cache-Control"] == "private, no-cache"
    entry = AccessLogEntry.objects.filter(user=sonographer).latest("id")
    assert (entry.action, entry.object_type, entry.object_id) == ("DOWNLOAD", "image_original", image.id)


def test_an_uploaded_png_downloads_as_uploaded(client, sonographer, study):
    data = png_bytes(seed=3)
    image = image_upload(study=study, data=data, filename="scan.png", uploaded_by=sonographer).image
    client.force_login(sonographer)
    response = client.get(reverse("image-original", args=[image.id]))
    assert response.status_code == 200 and response["Content-Type"] == "image/png" and _content(response) == data


def test_another_clinic_gets_404(client, south_sonographer, dicom_image):
    client.force_login(south_sonographer)
    assert client.get(reverse("image-original", args=[dicom_image[0].id])).status_code == 404


def test_an_image_without_its_original_gets_404_and_no_link(client, sonographer, study):
    image = image_upload(study=study, data=png_bytes(), filename="old.png", uploaded_by=sonographer).image
    UltrasoundImage.objects.filter(id=image.id).update(original=None, original_width=None, original_height=None)
    client.force_login(sonographer)
    url = reverse("image-original", args=[image.id])
    assert client.get(url).status_code == 404
    assert url not in client.get(reverse("study-detail", args=[study.id])).content.decode()
