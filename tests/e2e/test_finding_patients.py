"""Finding patients in a real browser (issue 19, item 6): a patient registered as "Zoë Núñez" is found by a
sonographer who types "zoe" or "nunez", and an MRN typed in another case is the registered patient, not a new one."""

from __future__ import annotations

import pytest

expect = pytest.importorskip("playwright.sync_api", reason="pip install -r requirements-dev.txt").expect

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _register(page, live_server, *, mrn: str, given: str, family: str) -> None:
    page.goto(f"{live_server.url}/patients/new/")
    page.get_by_label("MRN").fill(mrn)
    page.get_by_label("Given name").fill(given)
    page.get_by_label("Family name").fill(family)
    page.get_by_role("button", name="Save patient").click()


def test_zoe_is_found_without_accents_and_her_mrn_in_lower_case_is_her(log_in, sonographer, live_server):
    page = log_in(sonographer)
    _register(page, live_server, mrn="N-2024-0815", given="Zoë", family="Núñez")
    expect(page.get_by_role("heading", name="Núñez, Zoë")).to_be_visible()

    for typed in ("zoe", "NUNEZ", "nunez, zoe"):
        page.goto(f"{live_server.url}/")
        page.get_by_role("search").get_by_role("textbox").first.fill(typed)
        page.get_by_role("button", name="Apply").click()
        found = page.locator("section[aria-labelledby=patients-found] li")
        expect(found).to_have_count(1)
        expect(found).to_contain_text("Núñez, Zoë · MRN N-2024-0815")

    _register(page, live_server, mrn="n-2024-0815", given="Zoe", family="Nunez")
    expect(page.get_by_text("A patient with this MRN is already registered in your clinic.")).to_be_visible()
    assert sonographer.clinic.patients.count() == 1
