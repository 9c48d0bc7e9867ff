"""Read-only roles cannot write through the pages: the services refuse, whatever page or form calls them.
The security probe created a patient and a study as the clinic admin (read-only for clinical records)."""

from __future__ import annotations

import pytest

from classifier.models import ClassificationJob, ModelVersion
from fetalsite.accounts.roles import Role
from patients import services
from patients.models import Patient, Study
from tests.factories import UserFactory
from tests.images import png_bytes


@pytest.fixture
def clinic_admin(north):
    return UserFactory(username="admin_north", clinic=north, is_staff=True, role=Role.CLINIC_ADMIN)


@pytest.fixture
def failed_job(study, sonographer):
    ModelVersion.objects.create(
        name="tiny", version="1", file_path="t.keras", sha256="0" * 64, input_size=32, review_threshold=0.5,
        class_labels=["fetal_brain", "fetal_thorax", "fetal_abdomen", "fetal_femur"], is_active=True,
    )  # fmt: skip
    image = services.image_upload(study=study, data=png_bytes(), filename="a.png", uploaded_by=sonographer).image
    image.jobs.update(status=ClassificationJob.Status.FAILED)
    return image.jobs.get()


class TestClinicAdminCannotWriteClinicalRecords:
    def test_registering_a_patient_is_refused(self, client, clinic_admin):
        client.force_login(clinic_admin)
        response = client.post("/patients/new/", {"mrn": "LEAK-1", "given_name": "A", "family_name": "B"})
        assert response.status_code == 403
        assert not Patient.objects.filter(mrn="LEAK-1").exists()

    def test_opening_a_study_is_refused(self, client, clinic_admin, study):
        client.force_login(clinic_admin)
        before = Study.objects.count()
        response = client.post(f"/patients/{study.patient_id}/studies/new/", {"exam_date": "2026-01-20"})
        assert response.status_code == 403
        assert Study.objects.count() == before

    def test_retrying_a_job_is_refused(self, client, clinic_admin, failed_job):
        client.force_login(clinic_admin)
        response = client.post(f"/images/{failed_job.image_id}/retry/")
        assert response.status_code == 403
        failed_job.refresh_from_db()
        assert failed_job.status == ClassificationJob.Status.FAILED

    def test_signing_off_a_study_and_uploading_are_refused(self, client, clinic_admin, study):
        client.force_login(clinic_admin)
        assert client.post(f"/studies/{study.id}/sign-off/", {"acknowledged": "on"}).status_code == 403
        upload = client.post(f"/studies/{study.id}/upload/", {"file": png_bytes()})
        assert upload.status_code == 403
        study.refresh_from_db()
        assert study.status == Study.Status.OPEN and not study.images.exists()


class TestTheServicesCheckTheActingUser:
    def test_a_user_of_another_clinic_cannot_upload_into_this_study(self, study, south_sonographer):
        from django.core.exceptions import PermissionDenied

        with pytest.raises(PermissionDenied):
            services.image_upload(study=study, data=png_bytes(), filename="a.png", uploaded_by=south_sonographer)
        assert not study.images.exists()

    def test_the_sonographer_still_registers_patients(self, sonographer):
        patient = services.patient_create(created_by=sonographer, mrn="OK-1", given_name="A", family_name="B")
        assert patient.clinic_id == sonographer.clinic_id
