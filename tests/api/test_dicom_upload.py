"""DICOM files through the API, as a client sends them (multipart): accepted like a PNG when of the study's
patient, their facts in the image JSON, the original downloaded unchanged as application/dicom, refusals
with a code and nothing left behind, and one classified by a real worker."""

from __future__ import annotations

import hashlib
import shutil

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from pydicom.uid import JPEG2000Lossless

from classifier.models import ClassificationJob
from fetalsite.audit.models import AccessLogEntry
from patients.models import DicomInstance, UltrasoundImage
from tests.conftest import wait_for
from tests.dicom_samples import JPEGBaseline8Bit, dicom_bytes, img2dcm_bytes
from tests.factories import StudyFactory

MRN = "MRN-DICOM-1"  # the Patient ID tests.dicom_samples writes


@pytest.fixture
def dicom_study(integrator):
    return StudyFactory(patient__clinic=integrator.clinic, patient__mrn=MRN, created_by=integrator)


def _upload(client, study, *files: tuple[str, bytes]):
    parts = [SimpleUploadedFile(name, data, content_type="application/dicom") for name, data in files]
    return client.post(f"/api/v1/studies/{study.id}/images/", {"file": parts}, format="multipart")


def nothing_stored(media_root) -> bool:
    files = [p for p in media_root.rglob("*") if p.is_file()] if media_root.exists() else []
    return files == [] and not UltrasoundImage.objects.exists() and not ClassificationJob.objects.exists()


class TestDicomUpload:
    def test_accepted_with_its_facts_and_its_original_unchanged(self, api_client, dicom_study, model_version):
        data = dicom_bytes(calibrated=True, photometric="YBR_FULL_422", transfer_syntax=JPEGBaseline8Bit)

        response = _upload(api_client, dicom_study, ("scan.dcm", data))

        assert response.status_code == 202, response.json()
        body = response.json()
        assert (body["format"], body["width"], body["height"], body["job"]["status"]) == ("DICOM", 160, 120, "QUEUED")
        assert (
            body["original"]["media_type"] == "application/dicom" and body["sha256"] == hashlib.sha256(data).hexdigest()
        )
        facts = body["dicom"]
        assert facts["transfer_syntax_uid"] == JPEGBaseline8Bit and facts["manufacturer"] == "Acme Medical"
        assert (facts["pixel_spacing_x_mm"], facts["pixel_spacing_y_mm"]) == pytest.approx((0.125, 0.15))
        study = api_client.get(f"/api/v1/studies/{dicom_study.id}/").json()
        assert (study["study_instance_uid"], study["accession_number"]) == (facts["study_instance_uid"], "ACC-1")

        original = api_client.get(body["original"]["url"])
        assert original.status_code == 200 and original["Content-Type"] == "application/dicom"
        assert f'filename="image-{body["id"]}.dcm"' in original["Content-Disposition"]
        assert b"".join(original.streaming_content) == data
        assert AccessLogEntry.objects.filter(
            action="DOWNLOAD", object_type="image_original", object_id=body["id"]
        ).exists()

    def test_the_same_sop_instance_again_answers_200_with_the_same_image(self, api_client, dicom_study, model_version):
        data = dicom_bytes()
        first = _upload(api_client, dicom_study, ("a.dcm", data))
        second = _upload(api_client, dicom_study, ("b.dcm", data))
        assert (first.status_code, second.status_code) == (202, 200)
        assert first.json()["id"] == second.json()["id"] and DicomInstance.objects.count() == 1

    def test_a_png_has_no_dicom_facts(self, api_client, study, model_version):
        from tests.images import png_bytes

        response = api_client.post(
            f"/api/v1/studies/{study.id}/images/",
            {"file": SimpleUploadedFile("a.png", png_bytes())},
            format="multipart",
        )
        assert response.status_code == 202 and response.json()["dicom"] is None

    @pytest.mark.skipif(
        shutil.which("img2dcm") is None, reason="DCMTK's img2dcm is not installed (apt-get install dcmtk)"
    )
    def test_a_file_made_by_dcmtk(self, api_client, dicom_study, model_version, tmp_path):
        response = _upload(api_client, dicom_study, ("img2dcm.dcm", img2dcm_bytes(tmp_path)))
        assert response.status_code == 202 and response.json()["dicom"]["sop_class_uid"] == "1.2.840.10008.5.1.4.1.1.7"


class TestDicomRefusals:
    def test_another_patients_file_is_a_409_naming_both(self, api_client, study, media_root):
        response = _upload(api_client, study, ("scan.dcm", dicom_bytes()))
        body = response.json()
        assert (response.status_code, body["code"]) == (409, "dicom_patient_mismatch")
        assert MRN in body["detail"] and study.patient.mrn in body["fields"]["file"][0]
        assert nothing_stored(media_root)

    def test_a_batch_with_one_file_of_another_study_stores_nothing(self, api_client, dicom_study, media_root):
        response = _upload(api_client, dicom_study, ("a.dcm", dicom_bytes()), ("b.dcm", dicom_bytes()))
        assert (response.status_code, response.json()["code"]) == (409, "dicom_study_mismatch")
        assert nothing_stored(media_root)

    @pytest.mark.parametrize(
        ("make", "status", "code"),
        [
            (lambda: dicom_bytes(transfer_syntax=JPEG2000Lossless), 400, "dicom_unsupported"),
            (lambda: dicom_bytes(PixelData=None), 400, "dicom_no_pixels"),
            (lambda: dicom_bytes(Rows=60000, Columns=60000), 400, "too_many_pixels"),
            (lambda: b"this is a text file, not DICOM", 400, "not_dicom"),
        ],
        ids=["jpeg2000", "no-pixels", "60000x60000", "not-dicom"],
    )
    def test_broken_files_are_refused_with_their_code(self, api_client, dicom_study, media_root, make, status, code):
        response = _upload(api_client, dicom_study, ("scan.dcm", make()))
        assert (response.status_code, response.json()["code"]) == (status, code)
        assert response.json()["fields"]["file"] and nothing_stored(media_root)


def test_a_dicom_upload_is_classified_by_the_worker(api_client, integrator, celery_worker, active_model):
    study = StudyFactory(patient__clinic=integrator.clinic, patient__mrn=MRN, created_by=integrator)
    response = _upload(api_client, study, ("scan.dcm", dicom_bytes(photometric="MONOCHROME1")))
    assert response.status_code == 202
    image_url = f"/api/v1/images/{response.json()['id']}/"
    done = wait_for(lambda: (body := api_client.get(image_url).json())["prediction"] and body, timeout=60)
    assert done["job"]["status"] == "SUCCEEDED" and done["prediction"]["label"]
