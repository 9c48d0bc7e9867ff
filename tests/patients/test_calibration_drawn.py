"""Calibration by drawing (issue 21): a sonographer or clinician draws a line of known length on the image;
patients.services.image_calibrate makes the pixel size from it, refuses what cannot be right, keeps the change in
the image's history and gives the image's measurements millimetres."""

from __future__ import annotations

import math

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone
from pydicom.sequence import Sequence

from biometry.models import Measurement, MeasurementJob
from classifier.services import StudySignedOff
from fetalsite.accounts.roles import Role
from patients.forms import ImageCalibrationForm
from patients.models import UltrasoundImage
from patients.selectors import image_change_list, image_history
from patients.services import CalibrationFromDicom, image_calibrate, image_upload, study_sign_off
from tests.dicom_samples import dicom_bytes, tissue_region
from tests.factories import StudyFactory, UserFactory
from tests.images import png_bytes

pytestmark = pytest.mark.django_db
MRN = "MRN-DICOM-1"  # the Patient ID tests.dicom_samples writes


@pytest.fixture
def image(study, sonographer) -> UltrasoundImage:
    """A 64 x 48 px image, not calibrated."""
    return image_upload(study=study, data=png_bytes(), filename="head.png", uploaded_by=sonographer).image


def calibrate(image, user, *, start=(2.0, 10.0), end=(42.0, 10.0), distance_mm=10.0) -> UltrasoundImage:
    return image_calibrate(image=image, calibrated_by=user, start=start, end=end, distance_mm=distance_mm)


class TestImageCalibrate:
    def test_the_pixel_size_is_the_distance_over_the_lines_length(self, image, sonographer):
        calibrated = calibrate(image, sonographer, start=(3.0, 4.0), end=(33.0, 44.0), distance_mm=12.5)  # 50 px

        image.refresh_from_db()
        assert (image.pixel_size_mm, image.pixel_size_source) == (pytest.approx(0.25), "drawn")
        assert calibrated.pixel_size_mm == image.pixel_size_mm

    def test_the_change_is_in_the_images_history_with_who_and_how(self, image, sonographer):
        calibrate(image, sonographer)

        event = image_history(user=sonographer, image_id=image.id)[-1]
        assert (event.kind, event.actor) == ("calibration", "sono_north")
        assert (
            event.text
            == "Pixel size 0.25 mm (Drawn on the image (a known distance): Calibrated: 10 mm drawn over 40.0 px)."
        )
        change = image_change_list(user=sonographer, image_id=image.id)[-1]
        assert (change["record"], change["action"], change["actor"]) == ("image", "changed", "sono_north")
        assert change["changes"] == {
            "pixel_size_mm": {"from": None, "to": 0.25},
            "pixel_size_source": {"from": "", "to": "drawn"},
        }

    def test_a_clinician_may_calibrate_too_and_replace_a_drawn_or_given_size(self, study, sonographer, clinician):
        given = image_upload(
            study=study, data=png_bytes(), filename="a.png", uploaded_by=sonographer, pixel_size_mm=0.3
        ).image

        calibrate(given, clinician, distance_mm=8.0)
        calibrate(given, sonographer, distance_mm=6.0)

        given.refresh_from_db()
        assert (given.pixel_size_mm, given.pixel_size_source) == (pytest.approx(0.15), "drawn")
        texts = [e.text for e in image_history(user=sonographer, image_id=given.id) if e.kind == "calibration"]
        assert [t.split(" (")[0] for t in texts] == ["Pixel size 0.2 mm", "Pixel size 0.15 mm"]

    @pytest.mark.parametrize(
        ("start", "end"),
        [((10.0, 10.0), (10.0, 10.0)), ((10.0, 10.0), (10.5, 10.5))],
        ids=["zero", "under-a-pixel"],
    )
    def test_a_line_shorter_than_a_pixel_is_refused(self, image, sonographer, start, end):
        with pytest.raises(ValidationError) as refused:
            calibrate(image, sonographer, start=start, end=end)

        assert "shorter than a pixel" in refused.value.message_dict["end"][0]
        assert UltrasoundImage.objects.get(id=image.id).pixel_size_mm is None

    @pytest.mark.parametrize(
        ("start", "field"),
        [((-1.0, 10.0), "start"), ((64.0, 10.0), "start"), ((5.0, 47.6), "start"), ((math.nan, 1.0), "start")],
    )
    def test_a_point_outside_the_image_is_refused(self, image, sonographer, start, field):
        with pytest.raises(ValidationError) as refused:
            calibrate(image, sonographer, start=start)

        assert list(refused.value.message_dict) == [field]
        assert UltrasoundImage.objects.get(id=image.id).pixel_size_mm is None

    def test_the_edges_pixel_centres_and_their_outer_halves_are_inside(self, image, sonographer):
        calibrate(image, sonographer, start=(-0.5, -0.5), end=(63.5, -0.5), distance_mm=16.0)

        assert UltrasoundImage.objects.get(id=image.id).pixel_size_mm == pytest.approx(0.25)

    @pytest.mark.parametrize("distance_mm", [0.0, -5.0, 0.02, 500.0, math.inf])
    def test_a_distance_that_gives_no_plausible_pixel_size_is_refused(self, image, sonographer, distance_mm):
        with pytest.raises(ValidationError) as refused:
            calibrate(image, sonographer, distance_mm=distance_mm)  # over 40 px: 0.02 mm is 0.0005 mm/px

        assert list(refused.value.message_dict) == ["distance_mm"]

    def test_an_image_calibrated_by_its_dicom_file_is_refused(self, sonographer):
        study = StudyFactory(patient__clinic=sonographer.clinic, patient__mrn=MRN, created_by=sonographer)
        data = dicom_bytes(SequenceOfUltrasoundRegions=Sequence([tissue_region(160, 120)]))
        dicom_image = image_upload(study=study, data=data, filename="a.dcm", uploaded_by=sonographer).image

        with pytest.raises(CalibrationFromDicom) as refused:
            calibrate(dicom_image, sonographer)

        assert (refused.value.code, refused.value.http_status) == ("calibration_from_dicom", 409)
        dicom_image.refresh_from_db()
        assert (dicom_image.pixel_size_mm, dicom_image.pixel_size_source) == (pytest.approx(0.1), "dicom")

    def test_a_signed_off_study_is_read_only(self, image, sonographer, clinician):
        study_sign_off(study=image.study, signed_by=clinician, acknowledged=True)

        with pytest.raises(StudySignedOff):
            calibrate(image, sonographer)

    @pytest.mark.parametrize("role", [Role.INTEGRATOR, Role.CLINIC_ADMIN])
    def test_integrations_and_clinic_admins_may_not(self, image, north, role):
        user = UserFactory(clinic=north, role=role)

        with pytest.raises(PermissionDenied):
            calibrate(image, user)

        assert UltrasoundImage.objects.get(id=image.id).pixel_size_mm is None

    def test_another_clinics_sonographer_may_not(self, image, south_sonographer):
        with pytest.raises(PermissionDenied):
            calibrate(image, south_sonographer)

    def test_the_images_measurements_take_the_new_pixel_size(self, image, sonographer):
        job = MeasurementJob.objects.create(
            image=image, model_version="fetal-head-v1", status=MeasurementJob.Status.SUCCEEDED, queued_at=timezone.now()
        )
        ellipse = {"cx": 32.0, "cy": 24.0, "semi_major": 20.0, "semi_minor": 20.0, "angle_deg": 0.0}
        circle = Measurement.objects.create(
            job=job,
            image=image,
            model_ellipse=ellipse,
            center_x=32.0,
            center_y=24.0,
            semi_major=20.0,
            semi_minor=20.0,
            angle_deg=0.0,
            hc_px=2 * math.pi * 20,
            bpd_px=40.0,
            ofd_px=40.0,
        )

        calibrate(image, sonographer, distance_mm=10.0)  # 0.25 mm per pixel

        circle.refresh_from_db()
        assert (circle.pixel_size_mm, circle.calibration_source) == (pytest.approx(0.25), "drawn")
        assert circle.hc_mm == pytest.approx(2 * math.pi * 20 * 0.25, rel=1e-6)
        assert circle.bpd_mm == pytest.approx(10.0)


class TestImageCalibrationForm:
    def test_gives_the_services_arguments(self):
        form = ImageCalibrationForm(
            {"start_x": "1.5", "start_y": "2", "end_x": "40", "end_y": "2", "distance_mm": "10"}
        )

        assert form.is_valid(), form.errors
        assert form.calibration() == {"start": (1.5, 2.0), "end": (40.0, 2.0), "distance_mm": 10.0}

    @pytest.mark.parametrize("bad", ["", "nan", "inf", "ten"])
    def test_refuses_what_is_not_a_number(self, bad):
        form = ImageCalibrationForm({"start_x": "1", "start_y": "2", "end_x": "40", "end_y": "2", "distance_mm": bad})

        assert not form.is_valid() and list(form.errors) == ["distance_mm"]
