"""The study page's image viewer in a real browser (Debian's Chromium): zoom with keys and the wheel, pan with keys
and a drag, contrast, the heatmap with its opacity and colour key, next/previous by keyboard, two images side by
side, the shortcut list, and Escape giving focus back to the card; all under the Content-Security-Policy.

The images are classified by a real Celery worker running the test suite's tiny real model, so each card has a
prediction and a heatmap as a person would see them."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from django.conf import settings

from patients.services import image_exclude, image_upload
from tests.e2e.test_study_page import RESULT_TIMEOUT_MS, sample_images
from tests.images import png_bytes

expect = pytest.importorskip("playwright.sync_api", reason="pip install -r requirements-dev.txt").expect

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WATCH_CSP = """
    window.__cspViolations = [];
    document.addEventListener("securitypolicyviolation", (e) => window.__cspViolations.push(e.violatedDirective));
"""
AFTER_FRAMES = """(el) => new Promise((done) =>
    requestAnimationFrame(() => requestAnimationFrame(() => done(el.style.transform))))"""
TRANSFORM = re.compile(r"scale\(([-\d.e]+)\)\s*translate\(([-\d.e]+)px,\s*([-\d.e]+)px\)")


def transform(stack) -> tuple[float, float, float]:
    """The pane's Panzoom transform as (scale, x, y), read from the element's style once the frames Panzoom
    asked for have run (it writes the style in a requestAnimationFrame callback)."""
    style = stack.evaluate(AFTER_FRAMES)
    match = TRANSFORM.search(style)
    assert match, "no Panzoom transform on the pane"
    return tuple(float(value) for value in match.groups())


def test_viewer_zooms_pans_adjusts_and_compares_by_keyboard(
    log_in, sonographer, clinician, study, active_model, celery_worker, live_server, screenshot
):
    files = [*sample_images(), ("generated-3.png", "image/png", png_bytes(360, 260, seed=21))]
    images = [
        image_upload(study=study, data=data, filename=name, uploaded_by=sonographer).image for name, _, data in files
    ]
    # A test image a clinician excluded: the viewer still shows it, saying so.
    image_exclude(image=images[2], excluded_by=clinician, reason="test_image")
    page = log_in(sonographer)
    page.add_init_script(WATCH_CSP)
    page.goto(f"{live_server.url}/studies/{study.id}/")
    for image in images:
        expect(page.locator(f"#image-{image.id}")).to_have_attribute(
            "data-status", "SUCCEEDED", timeout=RESULT_TIMEOUT_MS
        )
    # The cards in page order: the order the viewer walks.
    ids = page.locator("#images .image-card").evaluate_all("(cards) => cards.map((card) => card.dataset.imageId)")
    names = [page.locator(f"#image-{id_} .filename").inner_text() for id_ in ids]
    first_card = page.locator(f"#image-{ids[0]}")
    model_label = first_card.locator(".result .label").inner_text()

    # Opened from the card: the first image, fitted to the pane.
    first_card.locator("a.enlarge").click()
    viewer = page.locator("dialog#viewer")
    expect(viewer).to_be_visible()
    expect(page.locator("#viewer-title")).to_have_text(names[0])
    expect(page.locator("#viewer-position")).to_have_text(f"Image 1 of {len(images)}")
    pane = viewer.locator('.viewer-pane[data-pane="0"]')
    stack, stage = pane.locator(".viewer-stack"), pane.locator(".viewer-stage")
    page.wait_for_function(
        "(img) => img.complete && img.naturalWidth > 0", arg=pane.locator(".viewer-photo").element_handle()
    )
    assert transform(stack)[0] == 1

    # Zoom: "+" (OHIF's zoom in), then the wheel over the image.
    page.keyboard.type("+")
    zoomed = transform(stack)[0]
    assert zoomed > 1
    box = stage.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -300)
    page.wait_for_function(
        "([el, before]) => parseFloat(el.style.transform.match(/scale\\(([^)]+)\\)/)[1]) > before",
        arg=[stack.element_handle(), zoomed],
    )
    assert transform(stack)[0] > zoomed
    expect(viewer.locator(".viewer-scale")).not_to_have_text("100%")

    # Pan: Shift + arrow keys, then a drag.
    _, x0, y0 = transform(stack)
    page.keyboard.press("Shift+ArrowRight")
    page.keyboard.press("Shift+ArrowDown")
    _, x1, y1 = transform(stack)
    assert x1 != x0 and y1 != y0
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 + 60, box["y"] + box["height"] / 2 + 30, steps=5)
    page.mouse.up()
    _, x2, y2 = transform(stack)
    assert x2 > x1 and y2 > y1

    # Contrast and brightness: a CSS filter on the photo.
    photo = pane.locator(".viewer-photo")
    viewer.get_by_label("Contrast").fill("160")
    assert "contrast(160%)" in photo.evaluate("(img) => img.style.filter")
    viewer.get_by_label("Brightness").fill("120")
    assert "brightness(120%)" in photo.evaluate("(img) => img.style.filter")

    # The heatmap, at the image's displayed size (not the 144 px thumbnail), its opacity and its colour key.
    heatmap, key = pane.locator(".viewer-heatmap"), pane.locator(".heatmap-key")
    expect(heatmap).to_be_hidden()
    stage.focus()
    page.keyboard.type("m")
    expect(heatmap).to_be_visible()
    expect(key).to_be_visible()
    expect(key.locator("figcaption")).to_have_text(f"Heatmap: where the model looked for {model_label}")
    heat_box, photo_box = heatmap.bounding_box(), photo.bounding_box()
    assert abs(heat_box["width"] - photo_box["width"]) < 1 and abs(heat_box["height"] - photo_box["height"]) < 1
    assert heat_box["width"] > 144
    viewer.get_by_label("Heatmap opacity").fill("30")
    assert heatmap.evaluate("(img) => img.style.opacity") == "0.3"
    viewer.get_by_label("Heatmap", exact=True).uncheck()
    expect(heatmap).to_be_hidden()
    viewer.get_by_label("Heatmap", exact=True).check()
    expect(heatmap).to_be_visible()

    # Space (OHIF's reset) puts zoom, pan and adjustments back.
    stage.focus()
    page.keyboard.press(" ")
    assert transform(stack) == (1, 0, 0)
    assert "contrast(100%)" in photo.evaluate("(img) => img.style.filter")

    # Next and previous image by keyboard (OHIF: down and up, Home and End): every card in page order, the
    # excluded image too, with its state.
    title, position = page.locator("#viewer-title"), page.locator("#viewer-position")
    states = {}
    for index, name in enumerate(names):
        if index:
            page.keyboard.press("ArrowDown")
        expect(title).to_have_text(name)
        expect(position).to_have_text(f"Image {index + 1} of {len(names)}")
        states[ids[index]] = pane.locator(".viewer-state").inner_text()
    assert states[str(images[2].id)].startswith("Excluded (test image)")
    assert "Fetal" in states[ids[0]] or "Not" in states[ids[0]]  # the card's result, in its words
    page.keyboard.press("ArrowDown")  # past the last: stays there
    expect(title).to_have_text(names[-1])
    page.keyboard.press("ArrowUp")
    expect(title).to_have_text(names[-2])
    page.keyboard.press("Home")
    expect(title).to_have_text(names[0])
    expect(viewer.get_by_role("button", name="‹ Previous")).to_be_disabled()

    # Side by side: "s" opens a second pane with the next image; another is picked from the list; each pane
    # zooms on its own, the keys acting on the active one (right arrow: the next pane, as OHIF's viewports).
    page.keyboard.type("s")
    other = viewer.locator('.viewer-pane[data-pane="1"]')
    expect(other).to_be_visible()
    expect(other.locator(".viewer-name")).to_have_text(names[1])
    other.get_by_label("Second image").select_option(ids[2])
    expect(other.locator(".viewer-name")).to_have_text(names[2])
    other.get_by_label("Second image").select_option(ids[1])
    expect(other.locator(".viewer-name")).to_have_text(names[1])
    # Its image may still be coming (the cards show thumbnails, so the full one is fetched now): fitting it resets
    # the zoom, so zoom once it is there, as with the first pane.
    page.wait_for_function(
        "(img) => img.complete && img.naturalWidth > 0", arg=other.locator(".viewer-photo").element_handle()
    )
    stage.focus()
    page.keyboard.press("ArrowRight")
    expect(other).to_have_class(re.compile(r"\bactive\b"))
    page.keyboard.type("+")
    assert transform(other.locator(".viewer-stack"))[0] > 1
    assert transform(stack)[0] == 1
    picture = screenshot(page, "viewer-side-by-side")
    if os.environ.get("UPDATE_DOCS_SCREENSHOT"):  # refresh the README's picture of the viewer: docs/viewer.png
        shutil.copy(picture, Path(settings.BASE_DIR) / "docs" / "viewer.png")

    # The shortcut list: "?" opens it; Escape closes it first, then the viewer.
    page.keyboard.type("?")
    shortcuts = viewer.locator("#viewer-help")
    expect(shortcuts).to_be_visible()
    expect(shortcuts).to_contain_text("Zoom in (OHIF)")
    page.keyboard.press("Escape")
    expect(shortcuts).to_be_hidden()
    expect(viewer).to_be_visible()
    viewer.get_by_role("button", name="Keyboard shortcuts").click()
    expect(shortcuts).to_be_visible()
    page.keyboard.press("Escape")
    page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()

    # Focus is back on the card of the image the first pane showed.
    assert page.evaluate("document.activeElement.matches('a.enlarge')")
    assert page.evaluate("document.activeElement.closest('.image-card').id") == f"image-{ids[0]}"
    assert page.evaluate("window.__cspViolations") == []


def test_tab_stays_inside_the_viewer(log_in, sonographer, study, live_server):
    image = image_upload(study=study, data=png_bytes(320, 240, seed=31), filename="scan.png", uploaded_by=sonographer)
    page = log_in(sonographer)
    page.goto(f"{live_server.url}/studies/{study.id}/")

    page.locator(f"#image-{image.image.id} a.enlarge").click()
    expect(page.locator("dialog#viewer")).to_be_visible()
    for _ in range(30):
        page.keyboard.press("Tab")
        assert page.evaluate("document.getElementById('viewer').contains(document.activeElement)")
    for _ in range(5):
        page.keyboard.press("Shift+Tab")
        assert page.evaluate("document.getElementById('viewer').contains(document.activeElement)")


@pytest.mark.parametrize("width", [768, 390])
def test_the_viewer_fits_a_tablet_and_a_phone(log_in, sonographer, study, live_server, screenshot, width):
    for seed in (41, 42):
        image_upload(
            study=study, data=png_bytes(320, 240, seed=seed), filename=f"scan-{seed}.png", uploaded_by=sonographer
        )
    page = log_in(sonographer, width=width, height=844)
    page.goto(f"{live_server.url}/studies/{study.id}/")

    page.locator("#images a.enlarge").first.click()
    page.keyboard.type("s")  # side by side: the panes stack on a phone
    viewer = page.locator("dialog#viewer")
    expect(viewer.locator('.viewer-pane[data-pane="1"]')).to_be_visible()

    box = viewer.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= width
    assert viewer.evaluate("(dialog) => dialog.scrollWidth <= dialog.clientWidth")
    screenshot(page, f"viewer-{width}")
