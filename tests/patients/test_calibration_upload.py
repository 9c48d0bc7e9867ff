"""An image's pixel size at upload (issue 21, calibration): given with the upload, read from a DICOM file's own
ultrasound region calibration, or none; always one DISPLAY pixel's, so a shrunk display rendition or a clip's key
frame is scaled; refused clearly, with nothing stored, when it cannot be right."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image
from pydicom.sequence import Sequence

from classifier.ml.keyframes import KeyFrame, frame_png
from classifier.models import ClassificationJob
from patients.models import UltrasoundImage
from patients.selectors import image_history
from patients.services import cine_key_frames_store, image_upload, image_upload_many
from tests.cine_samples import make_multiframe_dicom
from tests.dicom_samples import dicom_bytes, tissue_region, ultrasound_pixels
from tests.factories import StudyFactory
from tests.images import png_bytes

pytestmark = pytest.mark.django_db
MRN = "MRN-DICOM-1"  # the Patient ID tests.dicom_samples writes


def calibrated_dicom(pixels: np.ndarray | None = None, **region) -> bytes:
    pixels = ultrasound_pixels() if pixels is None else pixels
    height, width = pixels.shape[:2]
    return dicom_bytes(pixels, SequenceOfUltrasoundRegions=Sequence([tissue_region(width, height, **region)]))


@pytest.fixture
def dicom_study(sonographer):
    return StudyFactory(patient__clinic=sonographer.clinic, patient__mrn=MRN, created_by=sonographer)


def nothing_stored(media_root) -> bool:
    files = [p for p in media_root.rglob("*") if p.is_file()] if media_root.exists() else []
    return files == [] and not UltrasoundImage.objects.exists() and not ClassificationJob.objects.exists()


class TestGivenWithTheUpload:
    def test_a_given_pixel_size_is_stored_as_the_uploads(self, study, sonographer):
        image = image_upload(
            study=study, data=png_bytes(), filename="hc.png", uploaded_by=sonographer, pixel_size_mm=0.154
        ).image

        image.refresh_from_db()
        assert (image.pixel_size_mm, image.pixel_size_source) == (pytest.approx(0.154), "upload")
        upload_event = image_history(user=sonographer, image_id=image.id)[0]
        assert upload_event.kind == "upload" and "Pixel size 0.154 mm (Given with the upload)" in upload_event.text

    def test_without_one_the_image_is_not_calibrated(self, study, sonographer):
        image = image_upload(study=study, data=png_bytes(), filename="a.png", uploaded_by=sonographer).image

        image.refresh_from_db()
        assert (image.pixel_size_mm, image.pixel_size_source) == (None, "")
        assert "Pixel size" not in image_history(user=sonographer, image_id=image.id)[0].text

    @pytest.mark.parametrize("value", [0.0, -0.1, 0.0009, 10.5, math.nan, math.inf, -math.inf])
    def test_a_value_outside_0_001_to_10_mm_is_refused_and_nothing_stored(self, study, sonographer, media_root, value):
        with pytest.raises(ValidationError) as refused:
            image_upload(study=study, data=png_bytes(), filename="a.png", uploaded_by=sonographer, pixel_size_mm=value)

        assert refused.value.message_dict == {
            "pixel_size_mm": ["A pixel size is a number of millimetres from 0.001 to 10."]
        }
        assert nothing_stored(media_root)

    def test_a_file_shrunk_for_display_gets_the_display_pixels_size(self, study, sonographer):
        # 5000 px wide: the display rendition is halved (the 4096 px cap, an integer box filter), 2500 px wide.
        data = png_bytes(width=5000, height=40)

        image = image_upload(
            study=study, data=data, filename="wide.png", uploaded_by=sonographer, pixel_size_mm=0.1
        ).image

        assert (image.width, image.original_width) == (2500, 5000)
        assert image.pixel_size_mm == pytest.approx(0.2)

    def test_a_size_that_becomes_implausible_per_display_pixel_is_refused(self, study, sonographer, media_root):
        with pytest.raises(ValidationError) as refused:
            image_upload(
                study=study,
                data=png_bytes(width=5000, height=40),
                filename="wide.png",
                uploaded_by=sonographer,
                pixel_size_mm=6.0,
            )

        assert "display pixel would be 12" in refused.value.message_dict["pixel_size_mm"][0]
        assert nothing_stored(media_root)

    def test_the_same_bytes_again_return_the_image_unchanged(self, study, sonographer):
        first = image_upload(study=study, data=png_bytes(), filename="a.png", uploaded_by=sonographer).image

        again = image_upload(
            study=study, data=png_bytes(), filename="a.png", uploaded_by=sonographer, pixel_size_mm=0.2
        )

        assert (again.created, again.image.id) == (False, first.id)
        first.refresh_from_db()
        assert first.pixel_size_mm is None

    def test_several_files_take_the_one_pixel_size(self, study, sonographer):
        results = image_upload_many(
            study=study,
            files=[(png_bytes(seed=1), "a.png"), (png_bytes(seed=2), "b.png")],
            uploaded_by=sonographer,
            pixel_size_mm=0.3,
        )

        assert [(r.image.pixel_size_mm, r.image.pixel_size_source) for r in results] == [(0.3, "upload")] * 2


class TestDicomCalibration:
    def test_a_square_tissue_region_in_cm_calibrates_the_image(self, dicom_study, sonographer):
        image = image_upload(
            study=dicom_study, data=calibrated_dicom(delta_x_cm=0.0125), filename="a.dcm", uploaded_by=sonographer
        ).image

        image.refresh_from_db()
        assert (image.pixel_size_mm, image.pixel_size_source) == (pytest.approx(0.125), "dicom")
        assert "(DICOM ultrasound region calibration)" in image_history(user=sonographer, image_id=image.id)[0].text

    def test_non_square_pixels_leave_the_image_uncalibrated_but_record_the_files_spacing(
        self, dicom_study, sonographer
    ):
        image = image_upload(
            study=dicom_study, data=dicom_bytes(calibrated=True), filename="a.dcm", uploaded_by=sonographer
        ).image

        assert (image.pixel_size_mm, image.pixel_size_source) == (None, "")
        assert (image.dicom.pixel_spacing_x_mm, image.dicom.pixel_spacing_y_mm) == (0.125, 0.15)

    def test_a_region_in_other_units_leaves_the_image_uncalibrated(self, dicom_study, sonographer):
        region = tissue_region(160, 120)
        region.PhysicalUnitsXDirection = region.PhysicalUnitsYDirection = 4  # seconds: a trace, not tissue in cm
        data = dicom_bytes(SequenceOfUltrasoundRegions=Sequence([region]))

        image = image_upload(study=dicom_study, data=data, filename="a.dcm", uploaded_by=sonographer).image

        assert (image.pixel_size_mm, image.pixel_size_source) == (None, "")

    def test_a_file_without_regions_takes_the_given_size(self, dicom_study, sonographer):
        image = image_upload(
            study=dicom_study, data=dicom_bytes(), filename="a.dcm", uploaded_by=sonographer, pixel_size_mm=0.2
        ).image

        assert (image.pixel_size_mm, image.pixel_size_source) == (0.2, "upload")

    def test_a_given_size_within_1_percent_of_the_files_is_the_files(self, dicom_study, sonographer):
        image = image_upload(
            study=dicom_study,
            data=calibrated_dicom(delta_x_cm=0.01),
            filename="a.dcm",
            uploaded_by=sonographer,
            pixel_size_mm=0.1005,
        ).image

        assert (image.pixel_size_mm, image.pixel_size_source) == (pytest.approx(0.1), "dicom")

    def test_a_given_size_that_contradicts_the_file_is_refused_and_nothing_stored(
        self, dicom_study, sonographer, media_root
    ):
        with pytest.raises(ValidationError) as refused:
            image_upload(
                study=dicom_study,
                data=calibrated_dicom(delta_x_cm=0.01),
                filename="a.dcm",
                uploaded_by=sonographer,
                pixel_size_mm=0.2,
            )

        message = refused.value.message_dict["pixel_size_mm"][0]
        assert "calibrates itself at 0.1 mm per pixel" in message and "nothing was stored" in message
        assert nothing_stored(media_root)

    def test_a_contradicting_file_among_several_stores_none(self, dicom_study, sonographer, media_root):
        files = [(png_bytes(), "a.png"), (calibrated_dicom(delta_x_cm=0.01), "b.dcm")]

        with pytest.raises(ValidationError) as refused:
            image_upload_many(study=dicom_study, files=files, uploaded_by=sonographer, pixel_size_mm=0.3)

        assert list(refused.value.message_dict) == ["pixel_size_mm"]
        assert nothing_stored(media_root)

    def test_a_file_shrunk_for_display_gets_the_display_pixels_size(self, dicom_study, sonographer):
        pixels = np.tile(np.arange(4100, dtype=np.uint16) % 256, (8, 1)).astype(np.uint8)

        image = image_upload(
            study=dicom_study, data=calibrated_dicom(pixels, delta_x_cm=0.01), filename="a.dcm", uploaded_by=sonographer
        ).image

        assert (image.original_width, image.width) == (4100, 2050)
        assert (image.pixel_size_mm, image.pixel_size_source) == (pytest.approx(0.2), "dicom")


class TestKeyFrames:
    def test_a_calibrated_clips_key_frames_carry_its_pixel_size(self, dicom_study, sonographer):
        region = Sequence([tissue_region(160, 120, delta_x_cm=0.02)])
        clip = image_upload(
            study=dicom_study,
            data=make_multiframe_dicom(frames=4, SequenceOfUltrasoundRegions=region),
            filename="sweep.dcm",
            uploaded_by=sonographer,
        ).image
        frame = Image.fromarray(ultrasound_pixels(160, 120))

        (still,) = cine_key_frames_store(clip=clip, key_frames=[KeyFrame("fetal_brain", 2, 0.9, frame_png(frame))])

        assert (clip.pixel_size_mm, clip.pixel_size_source) == (pytest.approx(0.2), "dicom")
        assert (still.pixel_size_mm, still.pixel_size_source) == (pytest.approx(0.2), "dicom")

    def test_an_uncalibrated_clips_key_frames_are_uncalibrated(self, dicom_study, sonographer):
        clip = image_upload(
            study=dicom_study, data=make_multiframe_dicom(frames=4), filename="sweep.dcm", uploaded_by=sonographer
        ).image
        frame = Image.fromarray(ultrasound_pixels(160, 120))

        (still,) = cine_key_frames_store(clip=clip, key_frames=[KeyFrame("fetal_brain", 1, 0.9, frame_png(frame))])

        assert (still.pixel_size_mm, still.pixel_size_source) == (None, "")


class TestUploadPage:
    def test_the_form_takes_a_pixel_size(self, client, sonographer, study):
        client.force_login(sonographer)

        response = client.post(
            reverse("study-upload", args=[study.id]),
            {"file": SimpleUploadedFile("hc.png", png_bytes()), "pixel_size_mm": "0.154"},
            HTTP_X_REQUESTED_WITH="fetch",
        )

        assert response.status_code == 202
        assert (study.images.get().pixel_size_mm, study.images.get().pixel_size_source) == (0.154, "upload")

    def test_the_study_page_offers_the_field(self, client, sonographer, study):
        client.force_login(sonographer)

        page = client.get(reverse("study-detail", args=[study.id])).content.decode()

        assert 'name="pixel_size_mm"' in page and 'min="0.001"' in page

    @pytest.mark.parametrize("value", ["0", "11", "nan", "abc"])
    def test_a_bad_pixel_size_is_refused_with_the_fields_message(self, client, sonographer, study, media_root, value):
        client.force_login(sonographer)

        response = client.post(
            reverse("study-upload", args=[study.id]),
            {"file": SimpleUploadedFile("hc.png", png_bytes()), "pixel_size_mm": value},
            HTTP_X_REQUESTED_WITH="fetch",
        )

        assert response.status_code == 400
        assert "number" in response.content.decode() or "Ensure this value" in response.content.decode()
        assert nothing_stored(media_root)

    def test_a_plain_form_with_a_bad_pixel_size_comes_back_with_a_message(self, client, sonographer, study, media_root):
        client.force_login(sonographer)

        response = client.post(
            reverse("study-upload", args=[study.id]),
            {"file": SimpleUploadedFile("hc.png", png_bytes()), "pixel_size_mm": "20"},
            follow=True,
        )

        assert "Upload refused: " in response.content.decode()
        assert nothing_stored(media_root)


def test_the_display_png_of_a_shrunk_file_is_what_the_size_refers_to(study, sonographer):
    """The stored display rendition really is the halved one the pixel size counts in."""
    image = image_upload(
        study=study,
        data=png_bytes(width=5000, height=40),
        filename="wide.png",
        uploaded_by=sonographer,
        pixel_size_mm=0.1,
    ).image

    with Image.open(io.BytesIO(image.file.read())) as display:
        assert display.size == (image.width, image.height) == (2500, 20)
