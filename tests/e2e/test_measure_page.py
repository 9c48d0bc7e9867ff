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

    # Calibrating by drawing: two clicks on the image, the line's length in mm; the card then says millimetres.
    section = page.locator(f"#measure-{image.id}")
    section.locator("details.measure-edit > summary").click()
    section.get_by_role("button", name="Calibrate: draw a known distance").click()
    stage = section.locator(".measure-svg")
    stage.scroll_into_view_if_needed()
    box = stage.bounding_box()
    scale = box["width"] / image.width  # screen pixels per image pixel
    for x in (10, 210):
        page.mouse.click(box["x"] + (x + 0.5) * scale, box["y"] + 20.5 * scale)
    expect(section.locator(".measure-hint")).to_contain_text("A line of 200.0 pixels")
    section.get_by_label("Length of the line drawn, in mm").fill("30")
    section.get_by_role("button", name="Save the pixel size").click()

    expect(page.locator(f"#measure-{image.id} .calibration")).to_contain_text("0.1500 mm, drawn on the image")
    measurement.refresh_from_db()
    expect(page.locator(f"#measure-{image.id} .figure-hc")).to_contain_text(f"{measurement.hc_mm:.1f} mm")
    screenshot(page, "measure-calibrated")
