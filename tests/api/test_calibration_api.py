"""Calibration through the API (issue 21): `pixel_size_mm` with an upload (multipart), the image's
`pixel_size_mm` and `pixel_size_source`, and `POST /api/v1/images/{id}/calibration/` for a known distance drawn
on the image."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from pydicom.sequence import Sequence

from classifier.models import ClassificationJob
from fetalsite.accounts.roles import Role
from patients.models import UltrasoundImage
from tests.api.conftest import upload
from tests.conftest import _token_client
from tests.dicom_samples import dicom_bytes, tissue_region
from tests.factories import StudyFactory, UserFactory
from tests.images import png_bytes

pytestmark = pytest.mark.django_db


def post_upload(client, study, data: bytes, name: str = "hc.png", **fields):
    body = {"file": [SimpleUploadedFile(name, data)], **fields}
    return client.post(f"/api/v1/studies/{study.id}/images/", body, format="multipart")


def post_calibration(client, image_id: int, **body):
    body = {"start": [2, 10], "end": [42, 10], "distance_mm": 10, **body}
    return client.post(f"/api/v1/images/{image_id}/calibration/", body, format="json")


def nothing_stored(media_root) -> bool:
    files = [p for p in media_root.rglob("*") if p.is_file()] if media_root.exists() else []
    return files == [] and not UltrasoundImage.objects.exists() and not ClassificationJob.objects.exists()


@pytest.fixture
def study(integrator):
    return StudyFactory(patient__clinic=integrator.clinic, patient__mrn="MRN-DICOM-1", created_by=integrator)


class TestUploadPixelSize:
    def test_a_pixel_size_sent_with_the_file_calibrates_the_image(self, api_client, study):
        response = post_upload(api_client, study, png_bytes(), pixel_size_mm="0.154")

        assert response.status_code == 202, response.json()
        body = response.json()
        assert (body["pixel_size_mm"], body["pixel_size_source"]) == (0.154, "upload")
        detail = api_client.get(f"/api/v1/images/{body['id']}/").json()
        assert (detail["pixel_size_mm"], detail["pixel_size_source"]) == (0.154, "upload")

    @pytest.mark.parametrize("fields", [{}, {"pixel_size_mm": ""}], ids=["absent", "empty"])
    def test_without_one_the_image_is_not_calibrated(self, api_client, study, fields):
        body = post_upload(api_client, study, png_bytes(), **fields).json()

        assert (body["pixel_size_mm"], body["pixel_size_source"]) == (None, "")

    @pytest.mark.parametrize("value", ["0", "0.0005", "10.5", "-1", "nan", "inf", "abc"])
    def test_a_bad_value_is_a_400_on_the_field_and_nothing_is_stored(self, api_client, study, media_root, value):
        response = post_upload(api_client, study, png_bytes(), pixel_size_mm=value)

        assert response.status_code == 400
        assert list(response.json()["fields"]) == ["pixel_size_mm"]
        assert nothing_stored(media_root)

    def test_a_dicom_file_calibrates_itself(self, api_client, study):
        data = dicom_bytes(SequenceOfUltrasoundRegions=Sequence([tissue_region(160, 120, delta_x_cm=0.02)]))

        body = post_upload(api_client, study, data, name="a.dcm").json()

        assert (body["pixel_size_mm"], body["pixel_size_source"]) == (pytest.approx(0.2), "dicom")

    def test_a_pixel_size_that_contradicts_the_dicom_file_is_refused(self, api_client, study, media_root):
        data = dicom_bytes(SequenceOfUltrasoundRegions=Sequence([tissue_region(160, 120, delta_x_cm=0.02)]))

        response = post_upload(api_client, study, data, name="a.dcm", pixel_size_mm="0.1")

        assert response.status_code == 400
        assert "calibrates itself at 0.2 mm per pixel" in response.json()["fields"]["pixel_size_mm"][0]
        assert nothing_stored(media_root)


class TestImageCalibrateApi:
    @pytest.fixture
    def image(self, study, sonographer):
        return upload(study, user=sonographer)  # 64 x 48 px, not calibrated

    @pytest.mark.parametrize("role", [Role.SONOGRAPHER, Role.CLINICIAN])
    def test_a_drawn_distance_calibrates_the_image(self, image, north, role):
        client = _token_client(UserFactory(clinic=north, role=role))

        response = post_calibration(client, image.id, start=[3, 4], end=[33, 44], distance_mm=12.5)

        assert response.status_code == 200, response.json()
        assert (response.json()["pixel_size_mm"], response.json()["pixel_size_source"]) == (0.25, "drawn")
        history = client.get(f"/api/v1/images/{image.id}/history/").json()
        assert history[-1]["changes"] == {
            "pixel_size_mm": {"from": None, "to": 0.25},
            "pixel_size_source": {"from": "", "to": "drawn"},
        }

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"end": [2, 10]}, "end"),
            ({"start": [-3, 10]}, "start"),
            ({"end": [42, 48]}, "end"),
            ({"distance_mm": 1000}, "distance_mm"),
            ({"distance_mm": 0}, "distance_mm"),
            ({"start": [1, 2, 3]}, "start"),
            ({"start": ["a", 2]}, "start"),
            ({"distance_mm": "nan"}, "distance_mm"),
        ],
        ids=["zero-length", "outside-left", "outside-bottom", "absurd", "zero-mm", "three-numbers", "text", "nan"],
    )
    def test_what_cannot_be_right_is_a_400_naming_the_field(self, sonographer, image, body, field):
        response = post_calibration(_token_client(sonographer), image.id, **body)

        assert response.status_code == 400
        assert {name.split("[")[0] for name in response.json()["fields"]} == {field}  # "start[0]": its first number
        assert UltrasoundImage.objects.get(id=image.id).pixel_size_mm is None

    def test_an_unknown_field_is_refused(self, sonographer, image):
        response = post_calibration(_token_client(sonographer), image.id, pixel_size_mm=0.2)

        assert response.status_code == 400 and list(response.json()["fields"]) == ["pixel_size_mm"]

    def test_an_integration_token_is_refused(self, api_client, image):
        response = post_calibration(api_client, image.id)

        assert response.status_code == 403
        assert UltrasoundImage.objects.get(id=image.id).pixel_size_mm is None

    def test_another_clinics_image_is_not_found(self, south_sonographer, image):
        response = post_calibration(_token_client(south_sonographer), image.id)

        assert response.status_code == 404
        assert UltrasoundImage.objects.get(id=image.id).pixel_size_mm is None

    def test_a_dicom_calibration_is_not_overruled(self, api_client, sonographer, study):
        data = dicom_bytes(SequenceOfUltrasoundRegions=Sequence([tissue_region(160, 120)]))
        image_id = post_upload(api_client, study, data, name="a.dcm").json()["id"]

        response = post_calibration(_token_client(sonographer), image_id)

        assert response.status_code == 409
        assert response.json()["code"] == "calibration_from_dicom"
        assert UltrasoundImage.objects.get(id=image_id).pixel_size_source == "dicom"
