import datetime
from io import BytesIO

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from PIL import Image

from classifier import services as classifier_services
from classifier.models import ClassificationJob
from patients.models import Patient, Study, UltrasoundImage
from patients.services import (
    MRN_TAKEN,
    MrnExists,
    StudySignedOff,
    image_upload,
    patient_create,
    study_create,
    study_sign_off,
)
from tests.images import png_bytes


def stored_files(media_root):
    return [p for p in media_root.rglob("*") if p.is_file()] if media_root.exists() else []


class TestPatientCreate:
    def test_creates_the_patient_in_the_users_clinic(self, sonographer):
        patient = patient_create(created_by=sonographer, mrn=" 123 ", given_name="Ana", family_name="Lima")
        assert (patient.clinic, patient.mrn) == (sonographer.clinic, "123")
        assert patient.history.count() == 1

    def test_rejects_a_duplicate_mrn_in_the_same_clinic(self, sonographer):
        first = patient_create(created_by=sonographer, mrn="123", given_name="Ana", family_name="Lima")
        with pytest.raises(MrnExists) as refused:
            patient_create(created_by=sonographer, mrn="123", given_name="Bea", family_name="Lima")
        assert (refused.value.fields, refused.value.extra) == ({"mrn": [MRN_TAKEN]}, {"existing_id": first.id})
        assert Patient.objects.count() == 1

    def test_allows_the_same_mrn_in_another_clinic(self, sonographer, south_sonographer):
        patient_create(created_by=sonographer, mrn="123", given_name="Ana", family_name="Lima")
        patient_create(created_by=south_sonographer, mrn="123", given_name="Ana", family_name="Lima")
        assert Patient.objects.count() == 2

    def test_rejects_a_birth_date_in_the_future(self, sonographer):
        tomorrow = timezone.localdate() + datetime.timedelta(days=1)
        with pytest.raises(ValidationError, match="future"):
            patient_create(created_by=sonographer, mrn="1", given_name="A", family_name="B", birth_date=tomorrow)


class TestStudyCreate:
    def test_rejects_exam_date_in_future(self, study, sonographer):
        with pytest.raises(ValidationError, match="future"):
            study_create(
                patient=study.patient,
                exam_date=timezone.localdate() + datetime.timedelta(days=1),
                created_by=sonographer,
            )

    @pytest.mark.parametrize(("weeks", "days"), [(46, 0), (20, 7), (None, 3)])
    def test_rejects_gestational_age_out_of_range(self, study, sonographer, weeks, days):
        with pytest.raises(ValidationError):
            study_create(
                patient=study.patient,
                exam_date=datetime.date(2026, 1, 1),
                created_by=sonographer,
                gestational_age_weeks=weeks,
                gestational_age_days=days,
            )
        assert Study.objects.count() == 1

    def test_refuses_another_clinics_patient(self, study, south_sonographer):
        with pytest.raises(ValidationError):
            study_create(patient=study.patient, exam_date=datetime.date(2026, 1, 1), created_by=south_sonographer)


class TestImageUpload:
    def test_stores_file_record_and_queued_job(self, study, sonographer, media_root, active_model):
        result = image_upload(study=study, data=png_bytes(), filename="../scan one.png", uploaded_by=sonographer)
        image = result.image
        assert result.created
        assert (image.format, image.width, image.height, image.original_filename) == ("PNG", 64, 48, "scan one.png")
        assert "scan" not in image.file.name and image.file.name.startswith(f"images/clinic-{study.patient.clinic_id}/")
        stored = Image.open(media_root / image.file.name)
        assert stored.format == "PNG"
        assert np.array_equal(np.asarray(stored), np.asarray(Image.open(BytesIO(png_bytes()))))
        assert image.original.name.startswith(f"originals/clinic-{study.patient.clinic_id}/")
        assert image.original.name.endswith(".png") and "scan" not in image.original.name
        assert (media_root / image.original.name).read_bytes() == png_bytes()
        assert (image.original_width, image.original_height) == (64, 48)
        job = image.jobs.get()
        assert (job.status, job.model_version) == (ClassificationJob.Status.QUEUED, active_model)

    def test_same_bytes_twice_return_the_existing_record(self, study, sonographer, media_root):
        first = image_upload(study=study, data=png_bytes(), filename="a.png", uploaded_by=sonographer)
        second = image_upload(study=study, data=png_bytes(), filename="b.png", uploaded_by=sonographer)
        assert (second.created, second.image.id) == (False, first.image.id)
        assert UltrasoundImage.objects.count() == 1 and ClassificationJob.objects.count() == 1
        assert len(stored_files(media_root)) == 2  # the display rendition and the original, once

    @pytest.mark.parametrize("data", [b"", b"not an image at all", png_bytes()[:150]], ids=["empty", "text", "cut"])
    def test_bad_bytes_leave_no_record_and_no_file(self, study, sonographer, media_root, data):
        with pytest.raises(ValidationError):
            image_upload(study=study, data=data, filename="x.png", uploaded_by=sonographer)
        assert not UltrasoundImage.objects.exists() and not ClassificationJob.objects.exists()
        assert stored_files(media_root) == []

    def test_a_failure_after_the_files_are_saved_leaves_no_file_and_no_row(
        self, study, sonographer, media_root, monkeypatch
    ):
        def failing_job_create(*, image):
            raise RuntimeError("the queue is down")

        monkeypatch.setattr(classifier_services, "classification_job_create", failing_job_create)
        with pytest.raises(RuntimeError):
            image_upload(study=study, data=png_bytes(), filename="x.png", uploaded_by=sonographer)
        assert not UltrasoundImage.objects.exists() and stored_files(media_root) == []

    def test_a_failure_to_save_the_original_leaves_no_file_and_no_row(
        self, study, sonographer, media_root, monkeypatch
    ):
        storage = UltrasoundImage._meta.get_field("original").storage
        save = storage.save

        def save_all_but_originals(name, content, **kwargs):
            if name.startswith("originals/"):
                raise OSError("disk full")
            return save(name, content, **kwargs)

        monkeypatch.setattr(storage, "save", save_all_but_originals)
        with pytest.raises(OSError):
            image_upload(study=study, data=png_bytes(), filename="x.png", uploaded_by=sonographer)
        assert not UltrasoundImage.objects.exists() and stored_files(media_root) == []

    def test_refuses_a_signed_off_study(self, study, sonographer, clinician):
        study_sign_off(study=study, signed_by=clinician, acknowledged=True)
        with pytest.raises(StudySignedOff):
            image_upload(study=study, data=png_bytes(), filename="x.png", uploaded_by=sonographer)

    def test_enqueues_the_job_on_commit_to_the_real_broker(
        self, study, sonographer, active_model, django_capture_on_commit_callbacks
    ):
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            result = image_upload(study=study, data=png_bytes(), filename="x.png", uploaded_by=sonographer)
        assert len(callbacks) == 1
        assert result.image.jobs.get().celery_task_id  # the broker accepted the message

    def test_without_an_active_model_the_job_has_no_version(self, study, sonographer):
        result = image_upload(study=study, data=png_bytes(), filename="x.png", uploaded_by=sonographer)
        assert result.image.jobs.get().model_version is None
