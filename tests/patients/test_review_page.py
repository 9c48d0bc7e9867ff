"""The study page's review states (issue 19): a card says plainly whether its plane is a suggestion, confirmed,
corrected, not a plane or excluded; a clinician marks an image not a standard plane, excludes it and includes it
again through the card's forms (the fetch partials the page's script sends), and the summary follows."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from classifier.services import classification_job_run
from patients.models import UltrasoundImage
from patients.services import image_upload
from tests.images import png_bytes

PARTIAL = {"HTTP_X_REQUESTED_WITH": "fetch"}


@pytest.fixture
def image(study, sonographer, active_model) -> UltrasoundImage:
    image = image_upload(study=study, data=png_bytes(seed=1), filename="scan.png", uploaded_by=sonographer).image
    classification_job_run(job_id=image.jobs.get().id)
    return image


def card_of(html: str, image: UltrasoundImage) -> str:
    match = re.search(rf'<article[^>]* id="image-{image.id}".*?</article>', html, re.S)
    assert match, f"no card for image {image.id}"
    return match.group(0)


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


class TestCard:
    def test_a_result_is_a_suggestion_until_confirmed(self, client, sonographer, study, image):
        client.force_login(sonographer)
        card = card_of(client.get(reverse("study-detail", args=[study.id])).content.decode(), image)
        prediction = image.jobs.get().prediction

        assert 'data-review-state="suggested"' in card
        assert f"Suggested: {prediction.get_label_display()} {round(prediction.confidence * 100)}%" in text(card)
        assert "Suggested — not yet confirmed" in text(card)
        assert 'class="review"' not in card  # sonographers do not review

    def test_a_clinician_marks_it_not_a_plane(self, client, clinician, study, image):
        client.force_login(clinician)
        body = {"label": "not_a_plane", "not_plane_reason": "maternal", "comment": ""}

        response = client.post(reverse("image-review", args=[image.id]), body, **PARTIAL)

        assert response.status_code == 200
        card = response.content.decode()
        assert 'data-review-state="not_a_plane"' in card and "Not a fetal plane (Maternal)" in text(card)
        assert f"by {clinician.username}" in text(card)
        summary = client.get(reverse("study-images", args=[study.id]), **PARTIAL).content.decode()
        assert summary.count('data-state="missing"') == 4 and "No image awaits review" in summary

    def test_not_a_plane_without_a_reason_is_refused_on_the_card(self, client, clinician, image):
        client.force_login(clinician)

        response = client.post(reverse("image-review", args=[image.id]), {"label": "not_a_plane"}, **PARTIAL)

        assert response.status_code == 400
        assert "Choose why the image is not a standard fetal plane." in response.content.decode()
        assert image.jobs.get().prediction.review_state == "suggested"

    def test_confirming_makes_the_plane_confirmed_in_the_summary(self, client, clinician, study, image):
        client.force_login(clinician)
        label = image.jobs.get().prediction.label

        card = client.post(reverse("image-review", args=[image.id]), {"label": label}, **PARTIAL).content.decode()

        assert "Confirmed as" in text(card) and f"by {clinician.username}" in text(card)
        summary = client.get(reverse("study-images", args=[study.id]), **PARTIAL).content.decode()
        assert f'data-plane="{label}" data-state="confirmed"' in summary


class TestExcludeOnThePage:
    def test_a_clinician_excludes_and_includes_again(self, client, clinician, study, image):
        client.force_login(clinician)
        body = {"reason": "wrong_patient", "comment": "Twin's scan"}

        card = client.post(reverse("image-exclude", args=[image.id]), body, **PARTIAL).content.decode()

        assert re.search(r'<article class="[^"]*\bexcluded\b', card)  # muted by app.css
        assert "Excluded (wrong patient)" in text(card) and "Include again" in card
        assert 'class="review"' not in card  # include it first

        card = client.post(reverse("image-include", args=[image.id]), **PARTIAL).content.decode()

        assert "Excluded (" not in text(card) and "Exclude image" in card
        assert UltrasoundImage.objects.get(id=image.id).excluded_reason == ""

    def test_a_sonographer_sees_no_exclude_control_and_is_refused(self, client, sonographer, study, image):
        client.force_login(sonographer)
        page = client.get(reverse("study-detail", args=[study.id])).content.decode()
        assert "Exclude image" not in card_of(page, image)

        response = client.post(reverse("image-exclude", args=[image.id]), {"reason": "test_image"}, **PARTIAL)

        assert response.status_code == 403
        assert not UltrasoundImage.objects.get(id=image.id).is_excluded
