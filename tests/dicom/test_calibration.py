"""DICOM received over the network (C-STORE's and STOW-RS's service, dicom_instance_receive, and STOW-RS over HTTP)
is calibrated as an upload is (issue 21): the file's own ultrasound region calibration, by biometry.ml.calibration's
strict rule, becomes the image's pixel size with source "dicom"; a region it cannot trust leaves the image
uncalibrated, while the file's stated spacing is still recorded."""

from __future__ import annotations

import pytest
from pydicom.sequence import Sequence

from patients.models import UltrasoundImage
from patients.services import dicom_instance_receive
from tests.dicom.dicomweb_clients import token_of
from tests.dicom_samples import dicom_bytes, tissue_region

pytestmark = pytest.mark.django_db


def regions(*items) -> Sequence:
    return Sequence(list(items))


class TestReceivedInstances:
    def test_a_square_tissue_region_calibrates_the_image(self, north, integrator):
        data = dicom_bytes(SequenceOfUltrasoundRegions=regions(tissue_region(160, 120, delta_x_cm=0.0154)))

        image = dicom_instance_receive(clinic=north, data=data, received_by=integrator, source="US_ROOM_3").image

        image.refresh_from_db()
        assert (image.pixel_size_mm, image.pixel_size_source) == (pytest.approx(0.154), "dicom")
        assert (image.dicom.pixel_spacing_x_mm, image.dicom.pixel_spacing_y_mm) == pytest.approx((0.154, 0.154))

    @pytest.mark.parametrize(
        "region_list",
        [
            [tissue_region(160, 120, delta_x_cm=0.01, delta_y_cm=0.012)],  # pixels not square
            [tissue_region(160, 120, delta_x_cm=0.01), tissue_region(160, 120, delta_x_cm=0.02)],  # two disagree
            [],
        ],
        ids=["not-square", "ambiguous", "no-regions"],
    )
    def test_a_region_that_cannot_be_trusted_leaves_it_uncalibrated(self, north, integrator, region_list):
        data = dicom_bytes(SequenceOfUltrasoundRegions=regions(*region_list))

        image = dicom_instance_receive(clinic=north, data=data, received_by=integrator, source="US_ROOM_3").image

        assert (image.pixel_size_mm, image.pixel_size_source) == (None, "")

    def test_a_malformed_region_is_no_calibration_not_a_refusal(self, north, integrator):
        region = tissue_region(160, 120)
        region.RegionLocationMinX0 = [0, 1]  # one number expected, two sent: the region's bounds cannot be read
        data = dicom_bytes(SequenceOfUltrasoundRegions=regions(region))

        image = dicom_instance_receive(clinic=north, data=data, received_by=integrator, source="US_ROOM_3").image

        assert (image.pixel_size_mm, image.pixel_size_source) == (None, "")


def test_stow_rs_stores_the_files_calibration(client, integrator):
    data = dicom_bytes(SequenceOfUltrasoundRegions=regions(tissue_region(160, 120, delta_x_cm=0.02)))
    body = b"--B\r\nContent-Type: application/dicom\r\n\r\n" + data + b"\r\n--B--\r\n"

    response = client.generic(
        "POST",
        "/dicomweb/studies",
        body,
        content_type='multipart/related; type="application/dicom"; boundary=B',
        HTTP_AUTHORIZATION=f"Token {token_of(integrator)}",
    )

    assert response.status_code == 200, response.content[:500]
    image = UltrasoundImage.objects.get()
    assert (image.pixel_size_mm, image.pixel_size_source) == (pytest.approx(0.2), "dicom")
