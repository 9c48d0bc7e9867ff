"""DICOM files: read with pydicom into the same display rendition as any upload, refused clearly when broken,
uploaded into a study on the page, and received for a clinic by dicom_instance_receive (the network path)."""

from __future__ import annotations

import io
import logging
import shutil

import numpy as np
import pytest
from django.core.exceptions import PermissionDenied
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image
from pydicom.uid import JPEG2000Lossless, generate_uid

from classifier.models import ClassificationJob
from patients.cine_files import inspect_dicom_file
from patients.dicom_files import DicomRefused, inspect_dicom_bytes
from patients.models import DicomInstance, Patient, Study, UltrasoundImage
from patients.services import DicomPatientMismatch, PatientDetailsDiffer, dicom_instance_receive, image_upload
from tests.dicom_samples import (
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    RLELossless,
    SecondaryCaptureImageStorage,
    UltrasoundMultiFrameImageStorage,
    dicom_bytes,
    img2dcm_bytes,
    ultrasound_pixels,
)
from tests.factories import PatientFactory, StudyFactory

pytestmark = pytest.mark.django_db


def display_pixels(facts) -> np.ndarray:
    with Image.open(io.BytesIO(facts.derived_png)) as image:
        return np.asarray(image)


def nothing_stored(media_root) -> bool:
    files = [p for p in media_root.rglob("*") if p.is_file()] if media_root.exists() else []
    return files == [] and not UltrasoundImage.objects.exists() and not DicomInstance.objects.exists()


class TestReading:
    def test_monochrome2_keeps_its_pixels_and_header_facts(self):
        pixels = ultrasound_pixels()
        facts = inspect_dicom_bytes(dicom_bytes(pixels, transfer_syntax=ImplicitVRLittleEndian))

        assert np.array_equal(display_pixels(facts), pixels)
        assert (facts.format, facts.extension, facts.width, facts.height) == ("DICOM", "dcm", 160, 120)
        header = facts.dicom
        assert (header.patient_id, header.patient_family_name, header.patient_given_name) == (
            "MRN-DICOM-1",
            "Doe",
            "Jane",
        )
        assert (header.manufacturer, header.model_name, header.number_of_frames) == ("Acme Medical", "Sono 9", 1)
        assert header.pixel_spacing_x_mm is None and header.pixel_spacing_y_mm is None

    def test_ultrasound_region_calibration_becomes_millimetres(self):
        header = inspect_dicom_bytes(dicom_bytes(calibrated=True)).dicom
        assert header.pixel_spacing_x_mm == pytest.approx(0.125) and header.pixel_spacing_y_mm == pytest.approx(0.15)

    def test_monochrome1_is_inverted(self):
        pixels = ultrasound_pixels()
        assert np.array_equal(
            display_pixels(inspect_dicom_bytes(dicom_bytes(pixels, photometric="MONOCHROME1"))), 255 - pixels
        )

    @pytest.mark.parametrize("syntax", [None, RLELossless])
    def test_rgb_uncompressed_and_rle_are_lossless(self, syntax):
        pixels = np.stack([ultrasound_pixels(), np.zeros((120, 160), np.uint8), 255 - ultrasound_pixels()], axis=-1)
        data = dicom_bytes(pixels, photometric="RGB", **({"transfer_syntax": syntax} if syntax else {}))
        assert np.array_equal(display_pixels(inspect_dicom_bytes(data)), pixels)

    def test_ybr_full_is_converted_to_rgb(self):
        pixels = np.stack([ultrasound_pixels(), np.full((120, 160), 90, np.uint8), 255 - ultrasound_pixels()], axis=-1)
        shown = display_pixels(inspect_dicom_bytes(dicom_bytes(pixels, photometric="YBR_FULL"))).astype(int)
        assert np.abs(shown - pixels).max() <= 2  # YCbCr and back, rounded twice

    def test_ybr_full_422_jpeg_baseline_decodes_close_to_its_source(self):
        grey = ultrasound_pixels()
        facts = inspect_dicom_bytes(dicom_bytes(grey, photometric="YBR_FULL_422", transfer_syntax=JPEGBaseline8Bit))
        shown = display_pixels(facts).astype(int)
        assert shown.shape == (120, 160, 3)
        assert np.abs(shown[..., 0] - grey).mean() < 8  # lossy, but the same picture in RGB

    def test_palette_colour_goes_through_its_lookup_table(self):
        pixels = ultrasound_pixels()
        shown = display_pixels(inspect_dicom_bytes(dicom_bytes(pixels, photometric="PALETTE COLOR")))
        assert np.array_equal(shown[..., 0], pixels) and np.array_equal(shown[..., 1], 255 - pixels)

    def test_a_16_bit_image_is_windowed_to_8_bits(self):
        pixels = ultrasound_pixels().astype(np.uint16) * 200
        facts = inspect_dicom_bytes(dicom_bytes(pixels, WindowCenter=25500, WindowWidth=51000))
        shown = display_pixels(facts).astype(int)
        assert shown.dtype.kind in "iu" and np.abs(shown - ultrasound_pixels()).max() <= 1

    def test_secondary_capture_is_accepted(self):
        assert inspect_dicom_bytes(dicom_bytes(sop_class=SecondaryCaptureImageStorage)).dicom.sop_class_uid.endswith(
            ".7"
        )

    @pytest.mark.skipif(
        shutil.which("img2dcm") is None, reason="DCMTK's img2dcm is not installed (apt-get install dcmtk)"
    )
    def test_a_file_made_by_dcmtk_img2dcm(self, tmp_path):
        facts = inspect_dicom_bytes(img2dcm_bytes(tmp_path))
        assert facts.dicom.transfer_syntax_uid == JPEGBaseline8Bit and (facts.width, facts.height) == (160, 120)
        assert np.abs(display_pixels(facts).astype(int) - ultrasound_pixels()).mean() < 8


def _truncated() -> bytes:
    data = dicom_bytes()
    return data[: len(data) - 5000]


def _garbled() -> bytes:
    data = bytearray(dicom_bytes())
    at = data.index(b"\x10\x00\x10\x00")  # (0010,0010) Patient's Name: its length now runs past the end
    data[at + 6 : at + 8] = b"\xff\x7f"
    return bytes(data)


BROKEN = {
    "no pixel data": (lambda: dicom_bytes(PixelData=None), "dicom_no_pixels"),
    "truncated pixel data": (_truncated, "dicom_corrupt"),
    "60000x60000 declared": (lambda: dicom_bytes(Rows=60000, Columns=60000), "too_many_pixels"),
    "JPEG 2000": (lambda: dicom_bytes(transfer_syntax=JPEG2000Lossless), "dicom_unsupported"),
    "CT SOP class": (lambda: dicom_bytes(sop_class="1.2.840.10008.5.1.4.1.1.2"), "dicom_unsupported"),
    "garbled header": (_garbled, "dicom_corrupt"),
    # A cine loop is accepted (tests/patients/test_cine_upload.py), but not one whose frames are not all there.
    "cine loop short of frames": (
        lambda: dicom_bytes(sop_class=UltrasoundMultiFrameImageStorage, frames=3),
        "dicom_corrupt",
    ),
    "no preamble": (lambda: dicom_bytes()[132:], "not_dicom"),
}


class TestRefusals:
    @pytest.mark.parametrize("kind", BROKEN)
    def test_each_broken_file_is_refused_with_its_code(self, kind):
        make, code = BROKEN[kind]
        with pytest.raises(DicomRefused) as refused:
            inspect_dicom_file(make())
        assert refused.value.code == code and refused.value.http_status == 400
        assert refused.value.fields == {"file": [refused.value.message]}

    @pytest.mark.parametrize("kind", ["truncated pixel data", "60000x60000 declared", "JPEG 2000", "garbled header"])
    def test_the_page_refuses_them_and_leaves_nothing(self, client, sonographer, study, media_root, kind):
        make, code = BROKEN[kind]
        client.force_login(sonographer)
        response = client.post(
            reverse("study-upload", args=[study.id]),
            {"file": SimpleUploadedFile("scan.dcm", make())},
            HTTP_X_REQUESTED_WITH="fetch",
        )
        assert response.status_code == 400 and f'data-code="{code}"' in response.content.decode()
        assert nothing_stored(media_root) and not ClassificationJob.objects.exists()

    def test_a_dcm_name_on_other_bytes_is_not_dicom(self, sonographer, study, media_root):
        with pytest.raises(DicomRefused) as refused:
            image_upload(study=study, data=b"MZ\x90\x00 not a scan", filename="scan.dcm", uploaded_by=sonographer)
        assert refused.value.code == "not_dicom"
        assert nothing_stored(media_root)

    @pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns of each invalid value it reads
    def test_fuzzed_bytes_never_escape_as_another_error(self):
        data = dicom_bytes()
        rng = np.random.default_rng(3)
        for _ in range(60):
            fuzzed = bytearray(data)
            for at in rng.integers(132, len(data) // 2, size=4):
                fuzzed[at] = int(rng.integers(0, 256))
            try:
                inspect_dicom_bytes(bytes(fuzzed))
            except DicomRefused as refused:
                assert refused.code.startswith(("dicom_", "too_", "decoded_"))


class TestUploadIntoAStudy:
    def test_the_page_takes_a_dicom_of_the_studys_patient(self, client, sonographer, media_root):
        study = StudyFactory(patient__clinic=sonographer.clinic, patient__mrn="MRN-DICOM-1", created_by=sonographer)
        client.force_login(sonographer)
        data = dicom_bytes(calibrated=True, accession="ACC-77")
        response = client.post(
            reverse("study-upload", args=[study.id]),
            {"file": SimpleUploadedFile("scan.dcm", data)},
            HTTP_X_REQUESTED_WITH="fetch",
        )
        assert response.status_code == 202
        image = study.images.get()
        assert (image.format, image.original.name.endswith(".dcm"), image.original.read()) == ("DICOM", True, data)
        instance = image.dicom
        study.refresh_from_db()
        assert study.study_instance_uid == instance.study_instance_uid and study.accession_number == "ACC-77"
        assert (instance.clinic_id, instance.source, instance.pixel_spacing_x_mm) == (
            sonographer.clinic_id,
            "upload",
            0.125,
        )
        assert image.history.first().history_change_reason == "upload"
        page = client.get(reverse("study-detail", args=[study.id])).content.decode()
        assert "ACC-77" in page and instance.study_instance_uid in page

    def test_another_patients_file_is_refused_naming_both(self, sonographer, study, media_root):
        with pytest.raises(DicomPatientMismatch) as refused:
            image_upload(
                study=study, data=dicom_bytes(patient_id="SOMEONE-ELSE"), filename="a.dcm", uploaded_by=sonographer
            )
        assert "SOMEONE-ELSE" in refused.value.message and study.patient.mrn in refused.value.message
        assert refused.value.code == "dicom_patient_mismatch" and nothing_stored(media_root)

    def test_a_file_of_another_study_uid_is_refused(self, sonographer, media_root):
        study = StudyFactory(patient__clinic=sonographer.clinic, patient__mrn="MRN-DICOM-1", created_by=sonographer)
        first = image_upload(study=study, data=dicom_bytes(), filename="a.dcm", uploaded_by=sonographer)
        with pytest.raises(DicomRefused.__mro__[1]) as refused:  # an ApplicationError: dicom_study_mismatch
            image_upload(study=study, data=dicom_bytes(), filename="b.dcm", uploaded_by=sonographer)
        assert refused.value.code == "dicom_study_mismatch" and study.images.get() == first.image

    def test_the_same_sop_instance_again_is_the_same_image(self, sonographer):
        study = StudyFactory(patient__clinic=sonographer.clinic, patient__mrn="MRN-DICOM-1", created_by=sonographer)
        uid, sop = generate_uid(), generate_uid()
        first = image_upload(
            study=study, data=dicom_bytes(study_uid=uid, sop_uid=sop), filename="a", uploaded_by=sonographer
        )
        # Other bytes (re-encoded by a PACS), the same instance.
        again = image_upload(
            study=study,
            data=dicom_bytes(study_uid=uid, sop_uid=sop, transfer_syntax=RLELossless),
            filename="b",
            uploaded_by=sonographer,
        )
        assert (first.created, again.created, again.image.id) == (True, False, first.image.id)
        assert DicomInstance.objects.count() == 1


class TestReceive:
    def test_a_new_mrn_creates_patient_study_and_image_with_a_queued_job(
        self, sonographer, django_capture_on_commit_callbacks
    ):
        uid = generate_uid()
        with django_capture_on_commit_callbacks() as callbacks:
            result = dicom_instance_receive(
                clinic=sonographer.clinic,
                data=dicom_bytes(study_uid=uid, patient_id="NET-1", accession="A-9"),
                received_by=sonographer,
                source="dicom:STORESCU@127.0.0.1",
            )
        assert result.created and len(callbacks) == 1  # classification is queued once the transaction commits
        study = result.image.study
        assert (study.study_instance_uid, study.accession_number, str(study.exam_date)) == (uid, "A-9", "2024-03-15")
        patient = study.patient
        assert (patient.mrn, patient.family_name, patient.given_name, str(patient.birth_date)) == (
            "NET-1",
            "Doe",
            "Jane",
            "1990-01-02",
        )
        assert result.image.dicom.source == "dicom:STORESCU@127.0.0.1"
        assert ClassificationJob.objects.filter(image=result.image).count() == 1

    def test_the_same_instance_twice_is_one_image(self, sonographer):
        data = dicom_bytes(patient_id="NET-2")
        first, second = (
            dicom_instance_receive(clinic=sonographer.clinic, data=data, received_by=sonographer, source="t")
            for _ in range(2)
        )
        assert (first.created, second.created, second.image.id) == (True, False, first.image.id)
        assert (UltrasoundImage.objects.count(), Study.objects.count(), Patient.objects.count()) == (1, 1, 1)

    def test_a_known_mrn_with_another_name_is_refused_logged_and_nothing_created(self, sonographer, media_root, caplog):
        patient = PatientFactory(clinic=sonographer.clinic, mrn="NET-3", created_by=sonographer)
        with caplog.at_level(logging.WARNING, logger="patients.services"), pytest.raises(PatientDetailsDiffer):
            dicom_instance_receive(
                clinic=sonographer.clinic, data=dicom_bytes(patient_id="NET-3"), received_by=sonographer, source="t"
            )
        assert f"is patient {patient.id}" in caplog.text
        assert not Study.objects.exists() and Patient.objects.count() == 1 and nothing_stored(media_root)

    def test_a_second_image_joins_the_study_of_its_uid(self, sonographer):
        uid = generate_uid()
        for _ in range(2):
            dicom_instance_receive(
                clinic=sonographer.clinic,
                data=dicom_bytes(study_uid=uid, patient_id="NET-4"),
                received_by=sonographer,
                source="t",
            )
        assert Study.objects.get().images.count() == 2

    def test_a_user_of_another_clinic_cannot_receive_for_this_one(self, sonographer, south_sonographer, media_root):
        with pytest.raises(PermissionDenied):
            dicom_instance_receive(
                clinic=sonographer.clinic, data=dicom_bytes(), received_by=south_sonographer, source="t"
            )
        assert not Patient.objects.exists() and nothing_stored(media_root)
