"""The head measurement on the study page, in a real browser (issue 21, item 4): a clinician opens a study with a
measured brain image, drags an end of the long axis, saves the adjusted ellipse and sees its new HC on the card;
the handles move with the arrow keys too. Debian's Chromium through Playwright against the live server; the
measurement is made through the real services (tests/patients/test_measure_views.py)."""

from __future__ import annotations

import pytest

from biometry.models import Measurement
from tests.api.conftest import model_version  # noqa: F401 (a fixture)
from tests.patients.test_measure_views import head_model_card, measured_image  # noqa: F401 (a fixture)

expect = pytest.importorskip("playwright.sync_api", reason="pip install -r requirements-dev.txt").expect

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_clinician_drags_an_axis_end_saves_and_sees_the_adjusted_hc(
    log_in,
    clinician,
    study,
    model_version,  # noqa: F811
    live_server,
    screenshot,
):
    image, measurement = measured_image(study)
    page = log_in(clinician)
    page.goto(f"{live_server.url}/studies/{study.id}/")
    section = page.locator(f"#measure-{image.id}")
    hc = section.locator(".figure-hc .value")
    expect(hc).to_have_text(f"{measurement.hc_px:.1f}")

    section.locator("details.measure-edit > summary").click()
    section.get_by_role("button", name="Adjust the axes").click()
    handle = section.locator(".handle").first
    expect(handle).to_be_focused()
    # The keyboard moves a handle by a pixel (the form's points follow); the pointer drags it further out.
    points = section.locator(".measure-adjust input[name=points]")
    before = points.input_value()
    page.keyboard.press("ArrowLeft")
    assert points.input_value() != before
    handle.scroll_into_view_if_needed()
    box = handle.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - 30, y - 10, steps=5)
    page.mouse.up()
    expect(section.locator(".measure-live")).to_contain_text("not saved yet")
    screenshot(page, "measure-adjusting")

    section.get_by_role("button", name="Save the adjusted ellipse").click()

    expect(page.locator(f"#measure-{image.id}")).to_have_attribute("data-review-state", "adjusted")
    model_hc = measurement.hc_px
    measurement.refresh_from_db()
    assert measurement.review_state == Measurement.ReviewState.ADJUSTED
    assert measurement.hc_px > model_hc + 5  # the long axis got longer
    expect(page.locator(f"#measure-{image.id} .figure-hc .value")).to_have_text(f"{measurement.hc_px:.1f}")
    screenshot(page, "measure-adjusted")
