"""Small things on the study page, in a real browser (issue 19, item 10): a file uploaded again says so on its card
where a sighted person looks, and the keyboard never lands on a control that is hidden."""

from __future__ import annotations

import pytest

from tests.e2e.test_study_page import drop_files
from tests.images import png_bytes

expect = pytest.importorskip("playwright.sync_api", reason="pip install -r requirements-dev.txt").expect

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

FOCUSED = """() => {
    const el = document.activeElement;
    const r = el.getBoundingClientRect();
    return {
        what: el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + " " + (el.textContent || "").trim().slice(0, 30),
        hidden: el.closest("[hidden]") !== null,
        display: getComputedStyle(el).display,
        size: r.width * r.height,
    };
}"""


def test_a_duplicate_upload_says_so_on_its_card(log_in, sonographer, study, live_server):
    page = log_in(sonographer)
    page.goto(f"{live_server.url}/studies/{study.id}/")
    scan = [("scan.png", "image/png", png_bytes(320, 240, seed=5))]

    drop_files(page, "#dropzone", scan)
    expect(page.locator("#images .image-card:not(.uploading)")).to_have_count(1)
    drop_files(page, "#dropzone", [("scan-again.png", "image/png", scan[0][2])])

    note = page.locator("#images .image-card .duplicate-note")
    expect(note).to_be_visible()
    expect(note).to_have_text("scan-again.png was already in this study: this is its image, not stored again.")
    expect(page.locator("#images .image-card")).to_have_count(1)


def test_the_keyboard_never_lands_on_a_hidden_control(log_in, sonographer, study, live_server):
    page = log_in(sonographer)
    page.goto(f"{live_server.url}/studies/{study.id}/")
    hidden_button = page.locator("#upload-form .fallback button")
    expect(hidden_button).to_be_attached()
    assert hidden_button.evaluate("b => b.hidden && getComputedStyle(b).display") == "none"

    stops = []
    for _ in range(30):
        page.keyboard.press("Tab")
        stops.append(page.evaluate(FOCUSED))

    assert any(stop["what"].startswith("div#dropzone") for stop in stops), stops  # the zone is the control
    landed_hidden = [stop for stop in stops if stop["hidden"] or stop["display"] == "none" or stop["size"] == 0]
    assert landed_hidden == [], landed_hidden
