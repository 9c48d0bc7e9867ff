"""Sign-off and reopening (patients.services.study_sign_off / study_reopen), the read-only signed study, and the
gestational age a study may record. Predictions come from the test suite's tiny model, run by the real job."""

from __future__ import annotations

import datetime

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from classifier.labels import PLANE_LABELS
from classifier.models import ClassificationJob
from classifier.services import classification_job_retry, classification_job_run, image_review
from patients.models import Study
from patients.services import (
    StudyHasOpenItems,
    StudyNotSigned,
    StudySignedOff,
    image_upload,
    study_create,
    study_reopen,
    study_sign_off,
    study_update,
)
from tests.factories import UserFactory
from tests.images import png_bytes


def classified(study, user, seed: int):
    """An image of ``study`` classified by the active (tiny) model through its real job."""
    image = image_upload(study=study, data=png_bytes(seed=seed), filename=f"scan-{seed}.png", uploaded_by=user).image
    classification_job_run(job_id=image.jobs.get().id)
    return image


@pytest.fixture
def reviewed_study(study, sonographer, clinician, active_model):
    """Four images, each reviewed as one of the four planes: nothing is open."""
    for seed, label in enumerate(PLANE_LABELS):
        image_review(image=classified(study, sonographer, seed), label=label, reviewed_by=clinician)
    return study


@pytest.fixture
def south_clinician(south):
    return UserFactory(clinic=south, role="clinician")


class TestStudySignOff:
    def test_a_reviewed_study_is_signed_with_who_and_when_in_its_history(self, reviewed_study, clinician):
        before = timezone.now()
        study = study_sign_off(study=reviewed_study, signed_by=clinician)
        study.refresh_from_db()
        assert (study.status, study.signed_by, study.get_status_display()) == ("COMPLETED", clinician, "Signed off")
        assert study.signed_at >= before
        record = study.history.latest("history_id")
        assert (record.history_user, record.status, record.history_change_reason) == (
            clinician,
            "COMPLETED",
            "Signed off",
        )

    def test_open_items_are_listed_and_nothing_changes_until_acknowledged(
        self, study, sonographer, clinician, active_model
    ):
        unreviewed = classified(study, sonographer, seed=1)
        pending = image_upload(study=study, data=png_bytes(seed=2), filename="p.png", uploaded_by=sonographer).image
        with pytest.raises(StudyHasOpenItems) as refused:
            study_sign_off(study=study, signed_by=clinician)
        assert refused.value.code == "study_has_open_items" and refused.value.http_status == 409
        assert refused.value.extra == {"unreviewed": [unreviewed.id], "pending": [pending.id], "missing": PLANE_LABELS}
        study.refresh_from_db()
        assert (study.status, study.signed_by, study.history.count()) == ("OPEN", None, 1)

    def test_acknowledged_open_items_are_signed_and_recorded(self, study, sonographer, clinician, active_model):
        classified(study, sonographer, seed=1)
        study = study_sign_off(study=study, signed_by=clinician, acknowledged=True)
        assert (study.status, study.signed_by) == ("COMPLETED", clinician)
        reason = study.history.latest("history_id").history_change_reason
        assert reason == "Signed off with open items acknowledged: 1 unreviewed, 4 missing"

    @pytest.mark.parametrize("role", ["sonographer", "integrator", "clinic_admin"])
    def test_only_a_clinician_signs_off(self, reviewed_study, north, role):
        with pytest.raises(PermissionDenied):
            study_sign_off(study=reviewed_study, signed_by=UserFactory(clinic=north, role=role), acknowledged=True)
        assert Study.objects.get(id=reviewed_study.id).status == "OPEN"

    def test_another_clinics_clinician_cannot_sign_off(self, reviewed_study, south_clinician):
        with pytest.raises(PermissionDenied):
            study_sign_off(study=reviewed_study, signed_by=south_clinician, acknowledged=True)

    def test_signing_a_signed_study_changes_nothing(self, reviewed_study, clinician, north):
        first = study_sign_off(study=reviewed_study, signed_by=clinician)
        other = UserFactory(clinic=north, role="clinician")
        again = study_sign_off(study=reviewed_study, signed_by=other)
        assert (again.signed_by, again.signed_at) == (clinician, first.signed_at)
        assert again.history.count() == first.history.count()


class TestStudyReopen:
    def test_reopening_clears_the_signature_and_keeps_the_reason(self, reviewed_study, clinician, north):
        study_sign_off(study=reviewed_study, signed_by=clinician)
        other = UserFactory(clinic=north, role="clinician")
        study = study_reopen(study=reviewed_study, reopened_by=other, reason="  Wrong GA entered  ")
        study.refresh_from_db()
        assert (study.status, study.signed_by, study.signed_at) == ("OPEN", None, None)
        record = study.history.latest("history_id")
        assert (record.history_user, record.history_change_reason) == (other, "Wrong GA entered")
        signed = record.prev_record
        assert (signed.status, signed.signed_by_id) == ("COMPLETED", clinician.id)

    @pytest.mark.parametrize("reason", ["", "   ", "x" * 101])
    def test_a_reason_is_required_and_fits_the_history(self, reviewed_study, clinician, reason):
        study_sign_off(study=reviewed_study, signed_by=clinician)
        with pytest.raises(ValidationError) as refused:
            study_reopen(study=reviewed_study, reopened_by=clinician, reason=reason)
        assert "reason" in refused.value.message_dict
        assert Study.objects.get(id=reviewed_study.id).status == "COMPLETED"

    def test_only_a_clinician_reopens(self, reviewed_study, clinician, sonographer, south_clinician):
        study_sign_off(study=reviewed_study, signed_by=clinician)
        for user in (sonographer, south_clinician):
            with pytest.raises(PermissionDenied):
                study_reopen(study=reviewed_study, reopened_by=user, reason="Another image")
        assert Study.objects.get(id=reviewed_study.id).status == "COMPLETED"

    def test_an_open_study_cannot_be_reopened(self, study, clinician):
        with pytest.raises(StudyNotSigned) as refused:
            study_reopen(study=study, reopened_by=clinician, reason="Why not")
        assert refused.value.code == "study_not_signed"


class TestSignedStudyIsReadOnly:
    @pytest.fixture
    def signed(self, study, sonographer, clinician, active_model):
        image = classified(study, sonographer, seed=5)
        study_sign_off(study=study, signed_by=clinician, acknowledged=True)
        return image

    def test_an_upload_is_refused(self, signed, study, sonographer):
        with pytest.raises(StudySignedOff) as refused:
            image_upload(study=study, data=png_bytes(seed=9), filename="late.png", uploaded_by=sonographer)
        assert (refused.value.code, refused.value.http_status) == ("study_signed_off", 409)
        assert study.images.count() == 1

    def test_a_review_is_refused(self, signed, clinician):
        with pytest.raises(StudySignedOff):
            image_review(image=signed, label=PLANE_LABELS[0], reviewed_by=clinician)
        assert signed.jobs.get().prediction.reviewed_by is None

    def test_an_edit_is_refused(self, signed, study, sonographer):
        with pytest.raises(StudySignedOff):
            study_update(study=study, updated_by=sonographer, notes="late note")
        assert Study.objects.get(id=study.id).notes == ""

    def test_a_retry_is_refused(self, study, sonographer, clinician):
        image = image_upload(study=study, data=png_bytes(seed=3), filename="x.png", uploaded_by=sonographer).image
        job = classification_job_run(job_id=image.jobs.get().id)  # no active model: the job fails
        assert job.status == ClassificationJob.Status.FAILED
        study_sign_off(study=study, signed_by=clinician, acknowledged=True)
        with pytest.raises(StudySignedOff):
            classification_job_retry(job=job, retried_by=sonographer)
        assert ClassificationJob.objects.get(id=job.id).status == ClassificationJob.Status.FAILED

    def test_after_reopening_writes_work_again(self, signed, study, sonographer, clinician):
        study_reopen(study=study, reopened_by=clinician, reason="One more image")
        image_upload(study=study, data=png_bytes(seed=9), filename="late.png", uploaded_by=sonographer)
        image_review(image=signed, label=PLANE_LABELS[1], reviewed_by=clinician)
        study_update(study=study, updated_by=sonographer, notes="late note")
        assert study.images.count() == 2


class TestGestationalAge:
    @pytest.mark.parametrize(
        ("weeks", "days", "field"),
        [
            (0, 0, "gestational_age_weeks"),
            (3, 6, "gestational_age_weeks"),
            (45, 0, "gestational_age_weeks"),
            (20, 7, "gestational_age_days"),
            (None, 3, "gestational_age_weeks"),
        ],
    )
    def test_implausible_ages_are_refused(self, study, sonographer, weeks, days, field):
        with pytest.raises(ValidationError) as refused:
            study_create(
                patient=study.patient,
                exam_date=datetime.date(2026, 1, 1),
                created_by=sonographer,
                gestational_age_weeks=weeks,
                gestational_age_days=days,
            )
        assert field in refused.value.message_dict
        assert Study.objects.count() == 1

    @pytest.mark.parametrize(("weeks", "days", "stored"), [(4, 0, (4, 0)), (44, 6, (44, 6)), (20, None, (20, 0))])
    def test_plausible_ages_are_kept_and_whole_weeks_get_0_days(self, study, sonographer, weeks, days, stored):
        created = study_create(
            patient=study.patient,
            exam_date=datetime.date(2026, 1, 1),
            created_by=sonographer,
            gestational_age_weeks=weeks,
            gestational_age_days=days,
        )
        created.refresh_from_db()
        assert (created.gestational_age_weeks, created.gestational_age_days) == stored

    def test_an_edit_is_checked_and_kept_in_the_history(self, study, sonographer):
        with pytest.raises(ValidationError):
            study_update(study=study, updated_by=sonographer, gestational_age_weeks=0, gestational_age_days=0)
        study_update(study=study, updated_by=sonographer, gestational_age_weeks=21)
        study.refresh_from_db()
        assert (study.gestational_age_weeks, study.gestational_age_days) == (21, 0)
        record = study.history.latest("history_id")
        assert (record.history_user, record.gestational_age_weeks) == (sonographer, 21)
