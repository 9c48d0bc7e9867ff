"""A cine loop on the study page in a real browser (Debian's Chromium): dropped as a file, analysed by a real Celery
worker with the trained model, played (H.264 decoded by the browser), its timeline strip drawn, a key frame
marker and the keyboard moving the video to their frames, and the key frame's own card leading back to the clip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings

from tests.cine_samples import has_real_images, make_mp4
from tests.e2e.test_study_page import RESULT_TIMEOUT_MS, drop_files

expect = pytest.importorskip("playwright.sync_api", reason="pip install -r requirements-dev.txt").expect

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not has_real_images(),
        reason="the fetal-planes images are absent: which planes (and key frames) a clip shows is unknown",
    ),
]

FRAMES = 48  # frames 0-23 a brain, 24-47 a femur
FPS = 25

# The texts the clip's status line shows, in order, whatever the poll's timing (the worker may be quick), and
# the first video element the page showed for it.
WATCH_CLIP = """() => {
    window.__clipStatuses = [];
    window.__cspViolations = [];
    document.addEventListener("securitypolicyviolation", (e) => window.__cspViolations.push(e.violatedDirective));
    const record = () => {
        document.querySelectorAll("#images .cine-card .status").forEach((status) => {
            const text = status.textContent.trim();
            if (window.__clipStatuses[window.__clipStatuses.length - 1] !== text) window.__clipStatuses.push(text);
        });
        window.__firstVideo = window.__firstVideo || document.querySelector("#images video.cine-video");
    };
    new MutationObserver(record).observe(document.getElementById("images"), { subtree: true, childList: true });
}"""
FRAME_SHOWN = f"(video) => Math.floor(video.currentTime * {FPS} + 1e-6)"


def test_a_clip_plays_with_its_timeline_and_key_frames(
    log_in, sonographer, study, real_model, celery_worker, live_server, screenshot
):
    page = log_in(sonographer)
    page.goto(f"{live_server.url}/studies/{study.id}/")
    page.evaluate(WATCH_CLIP)

    drop_files(page, "#dropzone", [("sweep.mp4", "video/mp4", make_mp4(FRAMES, fps=FPS))])

    card = page.locator("#images .cine-card")
    strip = card.locator(".cine-strip")
    strip.wait_for(timeout=RESULT_TIMEOUT_MS)
    assert f"Analysing {FRAMES} frames" in page.evaluate("window.__clipStatuses")
    expect(card).to_have_attribute("data-status", "SUCCEEDED")
    # The polls replaced the card as the job went on, but kept its video element (a clip being watched plays on).
    assert page.evaluate("window.__firstVideo === document.querySelector('#images video.cine-video')")
    segments = card.locator("rect.seg").evaluate_all("rects => rects.map((r) => [+r.dataset.start, +r.dataset.end])")
    assert segments[0][0] == 0 and segments[-1][1] == FRAMES
    assert all(a[1] == b[0] for a, b in zip(segments, segments[1:], strict=False)), "the segments leave gaps"
    assert card.locator(".cine-legend li").count() >= 2

    # The browser decodes the H.264 rendition and plays it; the current-frame line follows.
    video = card.locator("video.cine-video")
    video.evaluate("(v) => { v.muted = true; return v.play(); }")
    page.wait_for_function(
        "(v) => v.readyState >= 2 && v.currentTime > 0.2", arg=video.element_handle(), timeout=15_000
    )
    video.evaluate("(v) => v.pause()")
    assert video.evaluate("(v) => v.videoWidth") > 0
    now = card.locator(".cine-now")
    assert float(now.evaluate("(line) => parseFloat(line.style.left)")) > 0

    # A key frame marker: a labelled button that moves the video to its frame.
    marker = card.get_by_role("button", name="key frame", exact=False).first
    frame = int(marker.get_attribute("data-frame"))
    label = marker.get_attribute("aria-label")
    assert label.endswith(f"frame {frame} of {FRAMES}, 0:{frame / FPS:05.2f}"), label
    marker.click()
    page.wait_for_function(f"(v) => ({FRAME_SHOWN})(v) === {frame}", arg=video.element_handle())
    expect(strip).to_have_attribute("aria-valuenow", str(frame))

    # The keyboard: Right steps one frame on the focused strip, Home goes to the first.
    strip.focus()
    page.keyboard.press("ArrowRight")
    assert video.evaluate(FRAME_SHOWN) == min(frame + 1, FRAMES - 1)
    page.keyboard.press("Home")
    assert video.evaluate(FRAME_SHOWN) == 0

    # A click anywhere on the strip seeks to the frame under the pointer.
    box = strip.bounding_box()
    strip.click(position={"x": box["width"] * 0.75, "y": box["height"] / 2})
    assert abs(video.evaluate(FRAME_SHOWN) - int(FRAMES * 0.75)) <= 1
    screenshot(page, "cine-clip", full_page=True)
    if os.environ.get("UPDATE_DOCS_SCREENSHOT"):  # refresh the README's picture of a clip's card: docs/cine-loop.png
        card.screenshot(path=str(Path(settings.BASE_DIR) / "docs" / "cine-loop.png"))

    # The key frame's still has its own card (classified like any image); its link leads back to the clip's frame.
    card.locator(".key-frames a").first.click()
    still_id = page.evaluate("location.hash").removeprefix("#image-")
    still = page.locator(f"#image-{still_id}")
    expect(still).to_be_in_viewport()
    expect(still.locator(".key-frame-of")).to_contain_text(f"Key frame {frame} of clip sweep.mp4")
    expect(still).to_have_attribute("data-status", "SUCCEEDED", timeout=RESULT_TIMEOUT_MS)
    still.locator("a.seek-clip").click()
    assert page.evaluate("location.hash") == "#" + card.get_attribute("id")
    assert video.evaluate(FRAME_SHOWN) == frame
    screenshot(page, "cine-key-frame", full_page=True)
    assert page.evaluate("window.__cspViolations") == [], "the player broke the Content-Security-Policy"

    # On a phone the player, the strip and its legend fit the width.
    page.set_viewport_size({"width": 375, "height": 812})
    assert page.evaluate("document.documentElement.scrollWidth") <= 375, "the page scrolls sideways at 375 px"
    assert strip.bounding_box()["width"] > 250
    screenshot(page, "cine-phone", full_page=True)
