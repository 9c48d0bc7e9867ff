"""Browser fixtures: Debian's Chromium driven by Playwright against pytest-django's live server.

Playwright's own browser download does not work here, so ``playwright install`` is never run: the
tests launch /usr/bin/chromium (``apt-get install chromium``) and skip when it is missing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORD = "correct-horse-battery"  # tests.factories.UserFactory's password


_saved_screenshots: list[Path] = []


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    """Where screenshots go (git-ignored); the run's summary prints the folder."""
    directory = Path(os.environ.get("E2E_SCREENSHOT_DIR", Path(settings.BASE_DIR) / "test-artifacts" / "screenshots"))
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture
def screenshot(screenshot_dir):
    def save(page, name: str, **options) -> Path:
        path = screenshot_dir / f"{name}.png"
        page.screenshot(path=str(path), **options)
        _saved_screenshots.append(path)
        return path

    return save


def pytest_terminal_summary(terminalreporter):
    if _saved_screenshots:
        terminalreporter.write_line(f"E2E screenshots saved under {_saved_screenshots[0].parent}:")
        for path in _saved_screenshots:
            terminalreporter.write_line(f"  {path.name}")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -r requirements-dev.txt")
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    # Playwright's sync API keeps an event loop in this thread; Django would then refuse ORM calls made
    # by the test itself. Only the test's own setup and checks run here; the app runs in live_server's thread.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="session")
def _live_server_media_url():
    """Django's live server wraps the app in a media handler built from MEDIA_URL, which fails on the
    app's MEDIA_URL = None (images are never public). Give it a prefix that no page links to."""
    previous = settings.MEDIA_URL
    settings.MEDIA_URL = "/__live-server-media-unused__/"
    yield
    settings.MEDIA_URL = previous


@pytest.fixture(scope="session")
def live_server(_live_server_media_url, live_server):
    return live_server


@pytest.fixture
def log_in(browser, live_server):
    """Open a fresh browser context (its own cookies) logged in as the user; returns the page."""
    contexts = []

    def open_page(user, *, width: int = 1280, height: int = 900):
        context = browser.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.goto(f"{live_server.url}/login/")
        page.get_by_label("Username").fill(user.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{live_server.url}/")
        return page

    yield open_page
    for context in contexts:
        context.close()
