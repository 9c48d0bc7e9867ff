"""The study page on a tablet (768 px) and a phone (390 px), in a real browser (issue 19, item 9): the page is never
wider than the window, nothing in an image card's body (percentages, review controls, names) runs out of its card,
and the image viewer's controls stay in the window. A clinician's view, so the review controls are there, with
classified stills, one with a long file name, and a cine clip's card; the images are classified by the tiny real
Keras model through their real jobs."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from django.conf import settings

from classifier.services import classification_job_run
from patients.services import image_upload
from tests.cine_samples import make_mp4
from tests.images import png_bytes

expect = pytest.importorskip("playwright.sync_api", reason="pip install -r requirements-dev.txt").expect

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

DATA_DIR = Path(settings.BASE_DIR).parent / "shared" / "data" / "fetal-planes"
WIDTHS = (768, 390)
LONG_NAME = "Voluson-E10_2024-08-15_N-2024-0815_fetal-abdomen-transverse-section-with-stomach-bubble.png"

# What the page measures: the document's width against the window's, and each card body's descendants that
# stick out of their card (sr-only text is clipped on purpose and is left out).
OVERFLOW = """() => {
    const out = [];
    for (const card of document.querySelectorAll("#images .image-card")) {
        const box = card.getBoundingClientRect();
        for (const el of card.querySelectorAll(".body *")) {
            if (el.closest(".sr-only")) continue;
            const r = el.getBoundingClientRect();
            if (r.width === 0 && r.height === 0) continue;
            if (r.left < box.left - 0.5 || r.right > box.right + 0.5) {
                const name = el.tagName.toLowerCase() + "." + String(el.className).split(" ").join(".");
                const at = (b) => `${Math.round(b.left)}..${Math.round(b.right)}`;
                out.push(`${card.id} ${name}: ${at(r)} outside ${at(box)}`);
            }
        }
    }
    return {scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth, out};
}"""


def _stills() -> list[tuple[str, bytes]]:
    """Four real images (one of each plane) when the data set is there, else generated PNGs."""
    manifest = DATA_DIR / "manifest.csv"
    if manifest.is_file():
        with manifest.open(newline="") as handle:
            rows = [row for row in csv.DictReader(handle) if row["split"] == "test"]
        picked = []
        for label in ("fetal_brain", "fetal_thorax", "fetal_abdomen", "fetal_femur"):
            row = next((r for r in rows if r["label"] == label and (DATA_DIR / r["file"]).is_file()), None)
            if row:
                picked.append((Path(row["file"]).name, (DATA_DIR / row["file"]).read_bytes()))
        if len(picked) == 4:
            return picked
    return [(f"generated-{seed}.png", png_bytes(640, 480, seed=seed)) for seed in range(4)]


@pytest.fixture
def full_study(study, sonographer, active_model):
    stills = _stills()
    stills[2] = (LONG_NAME, stills[2][1])
    for name, data in [*stills, ("sweep.mp4", make_mp4(12))]:
        image = image_upload(study=study, data=data, filename=name, uploaded_by=sonographer).image
        classification_job_run(job_id=image.jobs.get().id)
    return study


@pytest.mark.parametrize("width", WIDTHS)
def test_the_study_page_fits_the_window_and_its_cards(log_in, clinician, full_study, live_server, screenshot, width):
    page = log_in(clinician, width=width, height=900)
    page.goto(f"{live_server.url}/studies/{full_study.id}/")
    expect(page.locator("#images .cine-card")).to_have_count(1)
    assert page.locator("#images .image-card").count() >= 5  # and the clip's key frames, if it has any
    expect(page.locator("#images form.review").first).to_be_visible()
    page.wait_for_load_state("networkidle")

    measured = page.evaluate(OVERFLOW)
    screenshot(page, f"study-page-{width}px", full_page=True)

    assert measured["scrollWidth"] <= measured["innerWidth"], measured
    assert measured["out"] == [], "\n".join(measured["out"])
    for value in page.locator(".probs .prob-value").all():  # each percentage is there to read
        expect(value).to_be_visible()

    # The image viewer over the page fits the window too, its controls included.
    page.locator("#images .image-card a.enlarge").first.click()
    viewer = page.locator("dialog#viewer")
    expect(viewer).to_be_visible()
    fits = viewer.evaluate(
        """(dialog) => {
            const box = dialog.getBoundingClientRect();
            const out = [...dialog.querySelectorAll("button, input, select")]
                .filter((el) => el.getClientRects().length && !el.closest("[hidden]"))
                .map((el) => [el.textContent.trim() || el.name, el.getBoundingClientRect()])
                .filter(([, r]) => r.left < -0.5 || r.right > window.innerWidth + 0.5)
                .map(([name]) => name);
            return {left: box.left, right: box.right, width: window.innerWidth, out,
                    scrollWidth: document.documentElement.scrollWidth};
        }"""
    )
    screenshot(page, f"study-viewer-{width}px")
    assert fits["left"] >= 0 and fits["right"] <= fits["width"] + 0.5, fits
    assert fits["out"] == [] and fits["scrollWidth"] <= fits["width"], fits
