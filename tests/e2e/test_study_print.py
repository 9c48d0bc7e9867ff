"""Printing the study page (issue 19, item 4): the print stylesheet leaves out the menus, the drop zone, the forms,
buttons and review controls, and keeps the images, the plane summary and the disclaimer."""

from __future__ import annotations

import pytest

from classifier.services import classification_job_run
from patients.services import image_upload
from tests.e2e.test_study_page import sample_images

expect = pytest.importorskip("playwright.sync_api", reason="pip install -r requirements-dev.txt").expect

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# The menus, the drop zone, the review and exclusion controls, each image's history: screen only (buttons and
# links styled as buttons, sign-off's among them, are CONTROLS).
LEFT_OUT = ("header.topbar", "nav.crumbs", "#upload-form", "#dropzone", "form.review", "main details")
CONTROLS = "main button:visible, main .button:visible, main input:visible, main select:visible, main textarea:visible"


def test_the_printed_study_page_shows_the_record_without_the_controls(
    log_in, live_server, study, clinician, active_model
):
    for name, _, data in sample_images():
        image = image_upload(study=study, data=data, filename=name, uploaded_by=study.created_by).image
        classification_job_run(job_id=image.jobs.get().id)
    page = log_in(clinician)
    page.goto(f"{live_server.url}/studies/{study.id}/")
    for selector in LEFT_OUT:  # on screen, each is there to be hidden
        expect(page.locator(selector).first).to_be_attached()
    expect(page.locator("header.topbar")).to_be_visible()
    expect(page.locator("form.review").first).to_be_visible()

    page.emulate_media(media="print")

    for selector in LEFT_OUT:
        for element in page.locator(selector).all():
            expect(element).to_be_hidden()
    assert page.locator(CONTROLS).count() == 0
    expect(page.locator("#plane-summary")).to_be_visible()
    photos = page.locator(".image-card img.photo")
    assert photos.count() == 2
    for photo in photos.all():
        expect(photo).to_be_visible()
        assert photo.evaluate("img => img.complete && img.naturalWidth > 0")
    expect(page.locator("footer.foot")).to_contain_text("Decision support for trained staff — not a diagnosis.")
