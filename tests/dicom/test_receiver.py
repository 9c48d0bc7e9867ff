"""The DIMSE receiver against DCMTK's echoscu and storescu: who may associate, what a C-STORE creates, and the
failure statuses of refused instances. The receiver runs in a thread of this process on a free port."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from pydicom.uid import CTImageStorage, generate_uid

from classifier.models import ClassificationJob
from dicom.services import dicom_peer_update
from patients.models import Patient, Study, UltrasoundImage
from tests.conftest import wait_for
from tests.dicom.conftest import echo_status, run_dcmtk
from tests.dicom_samples import dicom_bytes, ultrasound_pixels
from tests.factories import PatientFactory

pytestmark = pytest.mark.e2e


def _write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


class TestAssociation:
    def test_echoscu_from_a_registered_sender_succeeds(self, receiver_port):
        result = run_dcmtk("echoscu", receiver_port)
        assert result.returncode == 0, result.stdout + result.stderr

    def test_an_unknown_calling_ae_title_is_rejected_and_logged(self, receiver_port, caplog):
        with caplog.at_level(logging.WARNING, logger="dicom.receiver"):
            result = run_dcmtk("echoscu", receiver_port, calling="INTRUDER")
        assert result.returncode != 0
        assert "Calling AE Title Not Recognized" in result.stdout + result.stderr
        assert "unknown calling AE title 'INTRUDER'" in caplog.text

    def test_a_registered_sender_from_another_address_is_rejected(self, receiver_port, north_peer, root):
        dicom_peer_update(peer=north_peer, updated_by=root, allowed_addresses="10.20.0.0/16")
        result = run_dcmtk("echoscu", receiver_port)
        assert result.returncode != 0
        assert "Calling AE Title Not Recognized" in result.stdout + result.stderr

    def test_a_sender_calling_another_ae_title_is_rejected(self, receiver_port):
        result = run_dcmtk("echoscu", receiver_port, called="ELSEWHERE")
        assert result.returncode != 0
        assert "Called AE Title Not Recognized" in result.stdout + result.stderr

    def test_an_inactive_sender_is_rejected(self, receiver_port, north_peer, root, caplog):
        dicom_peer_update(peer=north_peer, updated_by=root, is_active=False)
        with caplog.at_level(logging.WARNING, logger="dicom.receiver"):
            assert echo_status(receiver_port) is None
        assert "not active" in caplog.text


class TestCStore:
    def test_storescu_sends_a_file_and_a_folder_into_the_senders_clinic(self, receiver_port, north, tmp_path):
        study_uid = generate_uid()
        single = _write(tmp_path, "one.dcm", dicom_bytes(patient_id="MRN-NET-1", study_uid=study_uid))
        result = run_dcmtk("storescu", receiver_port, single)
        assert result.returncode == 0, result.stdout + result.stderr
        pixels = ultrasound_pixels()
        for index in range(3):  # a second study of the same patient, three frames from a sweep
            data = dicom_bytes(np.roll(pixels, 4 * index, axis=1), patient_id="MRN-NET-1", study_uid="1.2.3.4.5.6")
            _write(tmp_path, f"folder/sub/{index}.dcm", data)
        result = run_dcmtk("storescu", receiver_port, tmp_path / "folder", options=("+sd", "+r"))
        assert result.returncode == 0, result.stdout + result.stderr

        patient = Patient.objects.get(mrn="MRN-NET-1")
        assert (patient.clinic, patient.family_name, patient.given_name) == (north, "Doe", "Jane")
        studies = {study.study_instance_uid: study for study in Study.objects.filter(patient=patient)}
        assert set(studies) == {study_uid, "1.2.3.4.5.6"}
        assert studies[study_uid].images.count() == 1 and studies["1.2.3.4.5.6"].images.count() == 3
        assert studies[study_uid].accession_number == "ACC-1"
        images = UltrasoundImage.objects.filter(study__patient=patient)
        assert ClassificationJob.objects.filter(image__in=images).count() == 4  # each image queued for the model
        assert {image.uploaded_by.dicom_peer.ae_title for image in images} == {"STORESCU"}
        # One request id per association (the logs' and webhooks' key): the folder's three C-STOREs share one.
        request_ids = {
            uid: set(ClassificationJob.objects.filter(image__study=study).values_list("request_id", flat=True))
            for uid, study in studies.items()
        }
        (single_id,), (folder_id,) = request_ids[study_uid], request_ids["1.2.3.4.5.6"]
        assert single_id and folder_id and single_id != folder_id

    def test_the_same_instance_twice_is_one_image(self, receiver_port, tmp_path):
        path = _write(tmp_path, "same.dcm", dicom_bytes(patient_id="MRN-NET-2"))
        for _ in range(2):
            result = run_dcmtk("storescu", receiver_port, path)
            assert result.returncode == 0, result.stdout + result.stderr
        assert UltrasoundImage.objects.filter(study__patient__mrn="MRN-NET-2").count() == 1

    def test_a_patient_name_that_disagrees_with_the_mrn_is_refused(self, receiver_port, north, tmp_path, caplog):
        PatientFactory(clinic=north, mrn="MRN-NET-3", given_name="Mary", family_name="Major")
        path = _write(tmp_path, "other.dcm", dicom_bytes(patient_id="MRN-NET-3", patient_name="Doe^Jane"))
        with caplog.at_level(logging.WARNING):
            result = run_dcmtk("storescu", receiver_port, path, options=("-d",))  # -d shows the response's status
        output = result.stdout + result.stderr
        assert result.returncode != 0, output  # storescu exits non-zero when a store failed
        assert "0xc003" in output.lower(), output
        assert "patient_details_differ" in output  # the Error Comment names the code
        assert "patient_details_differ" in caplog.text
        assert not Study.objects.filter(patient__mrn="MRN-NET-3").exists()
        assert not UltrasoundImage.objects.exists()

    def test_an_unsupported_sop_class_is_refused_at_negotiation(self, receiver_port, tmp_path):
        path = _write(tmp_path, "ct.dcm", dicom_bytes(sop_class=CTImageStorage, patient_id="MRN-NET-4", Modality="CT"))
        result = run_dcmtk("storescu", receiver_port, path)
        assert result.returncode != 0
        assert "no presentation context" in (result.stdout + result.stderr).lower()
        assert not Patient.objects.filter(mrn="MRN-NET-4").exists()


def test_a_received_instance_is_classified(receiver_port, active_model, celery_worker, tmp_path):
    path = _write(tmp_path, "classify.dcm", dicom_bytes(patient_id="MRN-NET-5"))
    result = run_dcmtk("storescu", receiver_port, path)
    assert result.returncode == 0, result.stdout + result.stderr
    job = ClassificationJob.objects.get(image__study__patient__mrn="MRN-NET-5")
    wait_for(lambda: ClassificationJob.objects.filter(pk=job.pk, status=ClassificationJob.Status.SUCCEEDED).exists())
    assert job.image.study.patient.clinic == job.image.uploaded_by.clinic
