"""The sonographer's and clinician's web UI in a real browser (Debian's Chromium, via Playwright),
against a live server and a real Celery worker running the tiny real Keras model."""

from __future__ import annotations

import base64
import csv
import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings

from classifier.labels import FetalPlane
from patients.services import image_upload
from tests.images import png_bytes

expect = pytest.importorskip("playwright.sync_api", reason="pip install -r requirements-dev.txt").expect

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

DATA_DIR = Path(settings.BASE_DIR).parent / "shared" / "data" / "fetal-planes"
RESULT_TIMEOUT_MS = 90_000


def sample_images() -> list[tuple[str, str, bytes]]:
    """Two real fetal-plane images (a brain and a femur) when the data set is there, else generated PNGs."""
    manifest = DATA_DIR / "manifest.csv"
    if manifest.is_file():
        with manifest.open(newline="") as handle:
            rows = [row for row in csv.DictReader(handle) if row.get("split") == "test"]
        picked = []
        for label in ("fetal_brain", "fetal_femur"):
            row = next((r for r in rows if r["label"] == label and (DATA_DIR / r["file"]).is_file()), None)
            if row:
                picked.append((Path(row["file"]).name, "image/png", (DATA_DIR / row["file"]).read_bytes()))
        if len(picked) == 2:
            return picked
    return [
        ("generated-1.png", "image/png", png_bytes(320, 240, seed=11)),
        ("generated-2.png", "image/png", png_bytes(320, 240, seed=12)),
    ]


def drop_files(page, selector: str, files: list[tuple[str, str, bytes]]) -> None:
    """Drop several files at once on an element, as a person dragging them from a file manager."""
    payload = [{"name": name, "type": mime, "b64": base64.b64encode(data).decode()} for name, mime, data in files]
    data_transfer = page.evaluate_handle(
        """(files) => {
            const transfer = new DataTransfer();
            for (const file of files) {
                const bytes = Uint8Array.from(atob(file.b64), (c) => c.charCodeAt(0));
                transfer.items.add(new File([bytes], file.name, { type: file.type }));
            }
            return transfer;
        }""",
        payload,
    )
    page.dispatch_event(selector, "dragenter", {"dataTransfer": data_transfer})
    page.dispatch_event(selector, "drop", {"dataTransfer": data_transfer})


def wait_until(predicate, page, timeout_ms: int = 5_000) -> None:
    for _ in range(timeout_ms // 100):
        if predicate():
            return
        page.wait_for_timeout(100)
    raise AssertionError("condition not met in time")


WATCH_STATUSES = """() => {
    window.__noReload = true;
    window.__seen = {};
    window.__progressBars = 0;
    const record = () => document.querySelectorAll("#images .image-card").forEach((card) => {
        if (card.querySelector("progress.upload-progress")) window.__progressBars += 1;
        const name = card.querySelector(".filename").textContent.trim();
        const seen = (window.__seen[name] = window.__seen[name] || []);
        if (seen[seen.length - 1] !== card.dataset.status) seen.push(card.dataset.status);
    });
    new MutationObserver(record).observe(document.getElementById("images"),
        { subtree: true, childList: true, attributes: true, attributeFilter: ["data-status"] });
}"""


def test_drop_zone_opens_the_file_chooser_from_the_keyboard(log_in, sonographer, study, live_server):
    page = log_in(sonographer)
    page.goto(f"{live_server.url}/studies/{study.id}/")
    zone = page.locator("#dropzone")

    choosers = []
    page.on("filechooser", lambda chooser: choosers.append(chooser))
    page.evaluate("0")  # a round trip, so the file chooser interception is on before the key press

    page.keyboard.press("Tab")  # keyboard use, so focus rings show
    zone.focus()
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
    page.keyboard.press("Enter")
    wait_until(lambda: len(choosers) == 1, page)
    page.keyboard.press(" ")
    wait_until(lambda: len(choosers) == 2, page)

    assert all(chooser.is_multiple() for chooser in choosers)
    assert zone.get_attribute("role") == "button"
    assert page.get_by_label("Ultrasound image").count() == 1  # the labelled input behind the zone


def test_another_clinics_sonographer_cannot_open_the_study(log_in, south_sonographer, study, live_server):
    page = log_in(south_sonographer)

    response = page.goto(f"{live_server.url}/studies/{study.id}/")

    assert response.status == 404
    assert page.goto(f"{live_server.url}/studies/{study.id}/images/").status == 404
    assert study.patient.mrn not in page.goto(f"{live_server.url}/").text()


def test_upload_live_results_and_clinician_review(
    log_in, sonographer, clinician, active_model, celery_worker, live_server, screenshot
):
    # The sonographer registers a patient and opens a study.
    page = log_in(sonographer)
    page.get_by_role("link", name="New patient").first.click()
    page.get_by_label("MRN").fill("E2E-0001")
    page.get_by_label("Given name").fill("Grace")
    page.get_by_label("Family name").fill("Hopper")
    page.get_by_label("Date of birth").fill("1990-05-17")
    page.get_by_role("button", name="Save patient").click()
    page.get_by_role("link", name="New study").click()
    page.get_by_label("Exam date").fill("2026-11-20")
    page.get_by_label("GA weeks").fill("21")
    page.get_by_label("GA days").fill("3")
    page.get_by_role("button", name="Open study").click()
    page.wait_for_url("**/studies/*/")
    study_url = page.url
    page.evaluate(WATCH_STATUSES)

    # Three files in one drop: two images and a text file.
    images = sample_images()
    drop_files(page, "#dropzone", [*images, ("notes.txt", "text/plain", b"not an image, just notes\n")])

    rejected = page.locator(".image-card.rejected")
    rejected.wait_for()
    assert "notes.txt" in rejected.inner_text()
    assert "The file is not an image this server can read." in rejected.inner_text()
    page.wait_for_function(
        "() => document.querySelectorAll('#images .image-card[data-status=SUCCEEDED]').length === 2",
        timeout=RESULT_TIMEOUT_MS,
    )

    assert page.evaluate("window.__noReload") is True, "the page reloaded"
    assert page.evaluate("window.__progressBars") > 0, "no upload progress bar was shown"
    seen = page.evaluate("window.__seen")
    for name, _, _ in images:
        assert seen[name][-1] == "SUCCEEDED"
        assert {"QUEUED", "RUNNING"} & set(seen[name][:-1]), f"{name} showed no progress: {seen[name]}"
    cards = page.locator("#images .image-card[data-status=SUCCEEDED]")
    predicted = set()
    for index in range(2):
        card = cards.nth(index)
        predicted.add(card.locator(".result .label").inner_text())
        assert card.locator(".probs li").count() == 4
        assert card.locator("img.photo").evaluate("img => img.complete && img.naturalWidth > 0")
    assert predicted <= set(FetalPlane.labels)
    summary = dict(
        page.locator("#plane-summary li").evaluate_all(
            "items => items.map((li) => [li.querySelector('.plane-name').textContent, li.dataset.state])"
        )
    )
    # Nothing is present until a clinician confirms it: at most the unflagged suggestions (issue 19).
    assert "confirmed" not in summary.values()
    assert {name for name, state in summary.items() if state == "suggested"} <= predicted
    assert len(summary) == 4
    desktop = screenshot(page, "study-desktop", full_page=True)
    if os.environ.get("UPDATE_DOCS_SCREENSHOT"):  # refresh the README's picture: docs/study-page.png
        docs = Path(settings.BASE_DIR) / "docs"
        docs.mkdir(exist_ok=True)
        shutil.copy(desktop, docs / "study-page.png")

    page.set_viewport_size({"width": 375, "height": 812})
    assert page.evaluate("document.documentElement.scrollWidth") <= 375, "the page scrolls sideways at 375 px"
    screenshot(page, "study-phone", full_page=True)
    page.goto(f"{live_server.url}/")
    page.set_viewport_size({"width": 1280, "height": 800})
    assert "Hopper, Grace" in page.locator("table.list").inner_text()
    screenshot(page, "worklist", full_page=True)

    # The clinician corrects one label and sees it reviewed, with the model's answer kept, and in the history.
    page = log_in(clinician)
    page.goto(study_url)
    card_id = page.locator("#images .image-card[data-status=SUCCEEDED]").first.get_attribute("id")
    card = page.locator(f"#{card_id}")
    model_label = card.locator(".result .label").inner_text()
    corrected = next(plane for plane in FetalPlane if plane.label != model_label)

    card.get_by_label("Plane", exact=True).select_option(corrected.value)
    card.get_by_label("Comment (optional)").fill("Corrected in the browser test")
    card.get_by_role("button", name="Save review").click()

    card.locator(".reviewed-label").wait_for()
    assert card.locator(".reviewed-label").inner_text() == corrected.label
    assert card.locator(".reviewer").inner_text() == "clin_north"
    assert card.locator(".model-answer strong").inner_text() == model_label
    expect(page.locator(f'#plane-summary li[data-plane="{corrected.value}"]')).to_have_attribute(
        "data-state", "confirmed"
    )
    card.locator("details.history summary").click()
    timeline = card.locator(".timeline")
    timeline.wait_for()
    assert f"Corrected to {corrected.label}" in timeline.inner_text()
    assert "clin_north" in timeline.inner_text() and "sono_north" in timeline.inner_text()

    # The heatmap overlay and the enlarged view. The heatmap is made on this first request, by the worker's
    # heatmap_render: its URL answers 202 ("Preparing heatmap…") until the PNG is there, then the PNG.
    heatmap_answers = []
    page.on("response", lambda r: "/heatmap/" in r.url and heatmap_answers.append(r.status))
    expect(card.locator("img.heatmap")).to_be_hidden()
    card.locator(".heatmap-toggle").check()
    expect(card.locator(".heatmap-status")).to_have_text("Preparing heatmap…")
    expect(card.locator("img.heatmap")).to_be_visible(timeout=RESULT_TIMEOUT_MS)
    expect(card.locator(".heatmap-status")).to_be_hidden()
    assert heatmap_answers[0] == 202 and heatmap_answers[-1] == 200, heatmap_answers
    card.locator("a.enlarge").click()
    assert page.locator("dialog#viewer").is_visible()
    expect(page.locator("#viewer .viewer-pane:not([hidden]) .viewer-heatmap")).to_be_visible()
    page.keyboard.press("Escape")
    assert not page.locator("dialog#viewer").is_visible()
    screenshot(page, "study-reviewed", full_page=True)

    # The model page says what the model is for.
    page.get_by_role("link", name="Model", exact=True).click()
    assert "Decision support, not diagnosis." in page.locator("main").inner_text()
    assert "tiny v1" in page.locator("main").inner_text()
    screenshot(page, "model", full_page=True)


def test_a_refused_review_shows_the_servers_reason_in_the_card(
    log_in, sonographer, clinician, study, active_model, celery_worker, live_server
):
    image = image_upload(study=study, data=png_bytes(320, 240, seed=13), filename="scan.png", uploaded_by=sonographer)
    page = log_in(clinician)
    page.goto(f"{live_server.url}/studies/{study.id}/")
    card = page.locator(f"#image-{image.image.id}")
    expect(card).to_have_attribute("data-status", "SUCCEEDED", timeout=RESULT_TIMEOUT_MS)

    # A plane the server does not know (a stale or tampered form): the card shows the refusal in the API's words.
    card.get_by_label("Plane", exact=True).evaluate(
        "select => { select.add(new Option('Heart', 'fetal_heart')); select.value = 'fetal_heart'; }"
    )
    card.get_by_role("button", name="Save review").click()

    error = card.locator("form.review .form-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("fetal_heart is not one of the available choices")
    expect(error).to_have_attribute("role", "alert")
    assert card.locator(".reviewed-label").count() == 0
    assert card.get_by_role("button", name="Save review").is_enabled()  # the person can correct and try again
