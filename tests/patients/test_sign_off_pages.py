"""The sign-off confirmation page, the signed study page (read-only, reopen with a reason), the study edit page and
the new-study form's exam date, through Django's test client. Predictions come from the tiny model's real job."""

from __future__ import annotations

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from classifier.labels import PLANE_LABELS, plane_display
from classifier.services import classification_job_run, image_review
from patients.models import Study
from patients.services import image_upload, study_sign_off
from tests.images import png_bytes


def classified(study, user, seed: int, name: str | None = None):
    image = image_upload(
        study=study, data=png_bytes(seed=seed), filename=name or f"scan-{seed}.png", uploaded_by=user
    ).image
    classification_job_run(job_id=image.jobs.get().id)
    return image


@pytest.fixture
def as_user(client):
    def log_in(user):
        client.force_login(user)
        return client

    return log_in


class TestSignOffPage:
    def test_lists_the_open_items_with_links_to_their_cards(self, as_user, study, sonographer, clinician, active_model):
        left = classified(study, sonographer, seed=1, name="left-over.png")
        for seed in (2, 3, 4):  # all brains: at least two other planes are missing, whatever the model says
            image_review(image=classified(study, sonographer, seed), label=PLANE_LABELS[0], reviewed_by=clinician)

        page = as_user(clinician).get(reverse("study-sign-off", args=[study.id]))

        html = page.content.decode()
        assert page.status_code == 200
        assert "1 image not yet reviewed" in html
        assert f'href="/studies/{study.id}/#image-{left.id}">left-over.png</a>' in html
        missing = page.context["summary"].missing
        assert len(missing) >= 2 and "Planes not confirmed" in html
        assert all(f"<li>{plane_display(label)}</li>" in html for label in missing)
        assert 'name="acknowledged"' in html and "I have seen these open items" in html

    def test_without_acknowledging_nothing_is_signed(self, as_user, study, sonographer, clinician, active_model):
        classified(study, sonographer, seed=1)

        page = as_user(clinician).post(reverse("study-sign-off", args=[study.id]), {})

        assert page.status_code == 409
        assert "Tick this box" in page.content.decode()
        assert Study.objects.get(id=study.id).status == "OPEN"

    def test_acknowledged_signs_and_the_page_becomes_read_only(
        self, as_user, study, sonographer, clinician, active_model
    ):
        image = classified(study, sonographer, seed=1)
        client = as_user(clinician)

        page = client.post(reverse("study-sign-off", args=[study.id]), {"acknowledged": "on"}, follow=True)

        study.refresh_from_db()
        html = page.content.decode()
        assert (study.status, study.signed_by) == ("COMPLETED", clinician)
        assert f"Signed off by <strong>{clinician.username}</strong>" in html
        assert 'id="upload-form"' not in html and 'id="dropzone"' not in html
        assert f'action="/images/{image.id}/review/"' not in html and "Sign off study…" not in html
        assert "Edit study" not in html
        assert 'name="reason"' in html and "Reopen study" in html

    def test_a_signed_study_shows_the_sonographer_no_reopen_form(self, as_user, study, sonographer, clinician):
        study_sign_off(study=study, signed_by=clinician, acknowledged=True)

        html = as_user(sonographer).get(reverse("study-detail", args=[study.id])).content.decode()

        assert "Signed off by" in html and 'name="reason"' not in html and 'id="upload-form"' not in html

    def test_a_sonographer_is_refused_the_page_and_the_post(self, as_user, study, sonographer):
        client = as_user(sonographer)
        html = client.get(reverse("study-detail", args=[study.id])).content.decode()

        assert "Sign off study…" not in html and 'id="upload-form"' in html  # the upload flow is unchanged
        assert client.get(reverse("study-sign-off", args=[study.id])).status_code == 403
        assert client.post(reverse("study-sign-off", args=[study.id]), {"acknowledged": "on"}).status_code == 403
        assert Study.objects.get(id=study.id).status == "OPEN"


class TestReopen:
    def test_a_reason_is_required(self, as_user, study, clinician):
        study_sign_off(study=study, signed_by=clinician, acknowledged=True)

        page = as_user(clinician).post(reverse("study-reopen", args=[study.id]), {"reason": " "}, follow=True)

        assert "Not reopened" in page.content.decode()
        assert Study.objects.get(id=study.id).status == "COMPLETED"

    def test_reopening_with_a_reason_opens_the_study_and_records_why(self, as_user, study, clinician):
        study_sign_off(study=study, signed_by=clinician, acknowledged=True)

        page = as_user(clinician).post(
            reverse("study-reopen", args=[study.id]), {"reason": "Femur image missing"}, follow=True
        )

        study.refresh_from_db()
        assert (study.status, study.signed_by) == ("OPEN", None)
        assert study.history.latest("history_id").history_change_reason == "Femur image missing"
        assert 'id="upload-form"' in page.content.decode()

    def test_a_sonographer_cannot_reopen(self, as_user, study, sonographer, clinician):
        study_sign_off(study=study, signed_by=clinician, acknowledged=True)

        response = as_user(sonographer).post(reverse("study-reopen", args=[study.id]), {"reason": "Why"})

        assert response.status_code == 403
        assert Study.objects.get(id=study.id).status == "COMPLETED"


class TestStudyEditPage:
    def test_corrects_date_age_and_notes_into_the_history(self, as_user, study, sonographer):
        client = as_user(sonographer)
        form = client.get(reverse("study-edit", args=[study.id]))
        assert form.status_code == 200

        response = client.post(
            reverse("study-edit", args=[study.id]),
            {"exam_date": "2026-01-02", "gestational_age_weeks": "22", "gestational_age_days": "", "notes": "Breech"},
        )

        assert response.status_code == 302
        study.refresh_from_db()
        assert (study.exam_date, study.gestational_age, study.notes) == (datetime.date(2026, 1, 2), "22w0d", "Breech")
        assert study.history.latest("history_id").history_user == sonographer

    @pytest.mark.parametrize(("weeks", "days"), [("0", "0"), ("45", "0"), ("20", "7"), ("", "3")])
    def test_an_implausible_age_is_shown_on_the_form(self, as_user, study, sonographer, weeks, days):
        response = as_user(sonographer).post(
            reverse("study-edit", args=[study.id]),
            {"exam_date": "2026-01-02", "gestational_age_weeks": weeks, "gestational_age_days": days},
        )

        assert response.status_code == 200 and response.context["form"].errors
        assert Study.objects.get(id=study.id).exam_date == study.exam_date

    def test_a_signed_study_cannot_be_edited(self, as_user, study, sonographer, clinician):
        study_sign_off(study=study, signed_by=clinician, acknowledged=True)
        client = as_user(sonographer)

        shown = client.get(reverse("study-edit", args=[study.id]), follow=True)
        posted = client.post(reverse("study-edit", args=[study.id]), {"exam_date": "2026-01-02", "notes": "late"})

        assert "signed off and read-only" in shown.content.decode()
        assert posted.status_code == 302 and Study.objects.get(id=study.id).notes == ""


class TestNewStudyForm:
    def test_the_exam_date_is_today(self, as_user, study, sonographer):
        page = as_user(sonographer).get(reverse("study-create", args=[study.patient_id]))

        assert f'value="{timezone.localdate():%Y-%m-%d}"' in page.content.decode()


class TestSignedStudyCards:
    def test_a_failed_image_of_a_signed_study_has_no_retry_button(self, as_user, study, sonographer, clinician):
        image = image_upload(study=study, data=png_bytes(seed=8), filename="f.png", uploaded_by=sonographer).image
        classification_job_run(job_id=image.jobs.get().id)  # no active model: the job fails
        client = as_user(sonographer)
        retry = f'action="/images/{image.id}/retry/"'
        assert retry in client.get(reverse("study-detail", args=[study.id])).content.decode()

        study_sign_off(study=study, signed_by=clinician, acknowledged=True)

        assert retry not in client.get(reverse("study-detail", args=[study.id])).content.decode()
