"""Review states in a real browser (issue 19): a sonographer uploads a mixed batch with a photograph in it; the
summary shows no plane present until a clinician confirms; the clinician marks the photograph not a standard
plane, corrects one image, confirms the rest, and excludes a test image and includes it again. Debian's
Chromium through Playwright, a live server and a real Celery worker running the product's real model."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from django.conf import settings

from classifier.labels import FetalPlane
from tests.e2e.test_study_page import RESULT_TIMEOUT_MS, drop_files
from tests.factories import StudyFactory
from tests.images import photo_bytes

expect = pytest.importorskip("playwright.sync_api", reason="pip install -r requirements-dev.txt").expect

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

DATA_DIR = Path(settings.BASE_DIR).parent / "shared" / "data" / "fetal-planes"
PLANES = ("fetal_brain", "fetal_thorax", "fetal_femur")


def real_images() -> list[tuple[str, str, bytes]]:
    manifest = DATA_DIR / "manifest.csv"
    if not manifest.is_file():
        pytest.skip(f"the fetal-planes images are absent ({DATA_DIR})")
    with manifest.open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["split"] == "test"]
    picked = [next(row for row in rows if row["label"] == label) for label in PLANES]
    return [(f"{row['label']}.png", "image/png", (DATA_DIR / row["file"]).read_bytes()) for row in picked]


def summary_states(page) -> dict[str, str]:
    return dict(
        page.locator("#plane-summary li").evaluate_all(
            "items => items.map((li) => [li.dataset.plane, li.dataset.state])"
        )
    )


def save_review(card, *, plane: str | None = None, reason: str | None = None, state: str) -> None:
    if reason:
        card.get_by_label("Plane", exact=True).select_option("not_a_plane")
        card.get_by_label("If not a standard plane, why").select_option(reason)
    elif plane:
        card.get_by_label("Plane", exact=True).select_option(plane)
    card.get_by_role("button", name="Save review").click()
    expect(card).to_have_attribute("data-review-state", state)


def test_a_photograph_never_makes_a_plane_present_and_the_clinician_decides(
    log_in, sonographer, clinician, real_model, celery_worker, live_server, screenshot
):
    study = StudyFactory(patient__clinic=sonographer.clinic, created_by=sonographer)
    study_url = f"{live_server.url}/studies/{study.id}/"
    batch = [*real_images(), ("parrot.jpg", "image/jpeg", photo_bytes(seed=0))]

    page = log_in(sonographer)
    page.goto(study_url)
    drop_files(page, "#dropzone", batch)
    page.wait_for_function(
        f"() => document.querySelectorAll('#images .image-card[data-status=SUCCEEDED]').length === {len(batch)}",
        timeout=RESULT_TIMEOUT_MS,
    )
    expect(page.locator("#plane-summary .unreviewed-count")).to_have_text(f"{len(batch)} images not yet reviewed")
    assert "confirmed" not in summary_states(page).values()
    cards = page.locator("#images .image-card")
    for index in range(len(batch)):
        assert cards.nth(index).get_attribute("data-review-state") == "suggested"
        assert "Suggested — not yet confirmed" in cards.nth(index).inner_text()
    photo = page.locator("#images .image-card", has_text="parrot.jpg")
    # The real model flags it (its prediction's badges; a photograph it calls brain also gets a flagged measurement).
    expect(photo.locator("p.badges .badge.warn")).to_have_text("Needs review")
    screenshot(page, "review-states-suggested", full_page=True)

    # The clinician: the photograph is not a fetal plane; one image corrected; the rest confirmed.
    page = log_in(clinician)
    page.goto(study_url)
    photo = page.locator("#images .image-card", has_text="parrot.jpg")
    save_review(photo, reason="non_fetal", state="not_a_plane")
    expect(photo.locator(".result")).to_contain_text("Not a fetal plane")

    femur = page.locator("#images .image-card", has_text="fetal_femur.png")
    suggested = femur.locator(".result .label").inner_text()
    # Corrected to a plane none of the other images shows, so each plane below has one image.
    other = next(plane for plane in FetalPlane if plane.label not in (suggested, "Fetal brain", "Fetal thorax"))
    save_review(femur, plane=other.value, state="corrected")
    expect(femur.locator(".review-info")).to_contain_text(f"Corrected to {other.label}")
    for name in ("fetal_brain.png", "fetal_thorax.png"):
        card = page.locator("#images .image-card", has_text=name)
        save_review(card, state="confirmed")  # the form starts on the suggested plane: saving confirms it

    expect(page.locator("#plane-summary .unreviewed-count")).to_have_text("No image awaits review")
    confirmed = {
        page.locator("#images .image-card", has_text=name).locator(".reviewed-label").inner_text()
        for name in ("fetal_brain.png", "fetal_thorax.png", "fetal_femur.png")
    }
    states = summary_states(page)
    assert {FetalPlane(label).label for label, state in states.items() if state == "confirmed"} == confirmed

    # A test image is excluded (muted, marked, out of the summary) and included again.
    brain = page.locator("#images .image-card", has_text="fetal_brain.png")
    brain_label = brain.locator(".reviewed-label").inner_text()
    brain_plane = next(plane.value for plane in FetalPlane if plane.label == brain_label)
    others = {
        page.locator("#images .image-card", has_text=name).locator(".reviewed-label").inner_text()
        for name in ("fetal_thorax.png", "fetal_femur.png")
    }
    brain.locator("details.exclude summary").click()
    brain.get_by_label("Reason", exact=True).select_option("test_image")
    brain.get_by_role("button", name="Exclude image").click()
    expect(brain).to_have_attribute("data-review-state", "excluded")
    expect(brain.locator(".exclusion-info")).to_contain_text("Excluded (test image)")
    plane_row = page.locator(f'#plane-summary li[data-plane="{brain_plane}"]')
    expect(plane_row).to_have_attribute("data-state", "confirmed" if brain_label in others else "missing")
    screenshot(page, "review-states-excluded", full_page=True)
    brain.get_by_role("button", name="Include again").click()
    expect(brain).to_have_attribute("data-review-state", "confirmed")
    expect(plane_row).to_have_attribute("data-state", "confirmed")
