"""Sign-off in a real browser (Debian's Chromium, via Playwright): the clinician is warned about the one image
left unreviewed, acknowledges it and signs; the study page is then read-only and says who signed; reopening
needs a reason. The images are classified by the tiny real Keras model through their real jobs."""

from __future__ import annotations

import pytest

from classifier.labels import PLANE_LABELS
from classifier.services import classification_job_run, image_review
from patients.models import Study
from patients.services import image_upload
from tests.e2e.test_study_page import sample_images

expect = pytest.importorskip("playwright.sync_api", reason="pip install -r requirements-dev.txt").expect

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def one_left(study, sonographer, clinician, active_model):
    """Two classified images: the first reviewed by the clinician, the second left unreviewed."""
    images = []
    for name, _, data in sample_images():
        image = image_upload(study=study, data=data, filename=name, uploaded_by=sonographer).image
        classification_job_run(job_id=image.jobs.get().id)
        images.append(image)
    image_review(image=images[0], label=PLANE_LABELS[0], reviewed_by=clinician)
    return images[1]


def test_the_clinician_is_warned_signs_off_and_reopens_with_a_reason(
    log_in, clinician, study, one_left, live_server, screenshot
):
    page = log_in(clinician)
    page.goto(f"{live_server.url}/studies/{study.id}/")
    page.get_by_role("link", name="Sign off study…").click()

    warning = page.locator("#open-items")
    expect(warning).to_contain_text("1 image not yet reviewed")
    link = warning.get_by_role("link", name=one_left.original_filename)
    assert link.get_attribute("href") == f"/studies/{study.id}/#image-{one_left.id}"
    screenshot(page, "sign-off-confirmation")

    page.get_by_role("button", name="Sign off study").click()  # the box not ticked: nothing is signed
    expect(page.locator(".has-error")).to_contain_text("Tick this box")
    assert Study.objects.get(id=study.id).status == Study.Status.OPEN

    page.get_by_label("I have seen these open items").check()
    page.get_by_role("button", name="Sign off study").click()

    page.wait_for_url(f"{live_server.url}/studies/{study.id}/")
    expect(page.locator("#signed-off-by")).to_contain_text(f"Signed off by {clinician.username} at")
    for absent in ("#upload-form", "#dropzone", "form.review", "#sign-off-link", f"#image-{one_left.id} form"):
        expect(page.locator(absent)).to_have_count(0)
    screenshot(page, "signed-off-study")

    page.get_by_role("button", name="Reopen study").click()  # no reason: refused, still signed off
    expect(page.locator("body")).to_contain_text("Not reopened")
    assert Study.objects.get(id=study.id).status == Study.Status.COMPLETED

    page.get_by_label("Reason for reopening").fill("Second femur image to be added")
    page.get_by_role("button", name="Reopen study").click()

    expect(page.locator("#upload-form")).to_be_visible()
    expect(page.locator("#signed-off-by")).to_have_count(0)
    study.refresh_from_db()
    assert (study.status, study.signed_by) == (Study.Status.OPEN, None)
    assert study.history.latest("history_id").history_change_reason == "Second femur image to be added"
