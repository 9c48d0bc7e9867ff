"""The study page's cine loops: the player, the "Analysing N frames" card, the timeline strip read from the clip's
real analysis (a sweep over real images from tests.cine_samples, uploaded through the upload service and analysed by
the worker's service with the trained model), the key frames' cards that lead back to the clip, the poll that brings
them, and the video route with its byte ranges and clinic check."""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from classifier.models import ClassificationJob
from classifier.services import classification_job_run, model_version_register
from patients.models import UltrasoundImage
from patients.services import image_upload
from tests.cine_samples import has_real_images, make_mp4, make_multiframe_dicom
from tests.conftest import tiny_card
from tests.images import png_bytes

FRAMES = 30  # frames 0-14 a brain, 15-29 a femur
FPS = 25
needs_real_images = pytest.mark.skipif(
    not has_real_images(),
    reason="the fetal-planes images are absent: which planes (and key frames) a clip shows is unknown",
)


class _Elements(HTMLParser):
    """Every start tag as (tag, attributes), with the text up to the next tag, enough to read a card."""

    def __init__(self, html: str):
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.texts: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, {name: value or "" for name, value in attrs}))
        self.texts.append("")

    handle_startendtag = handle_starttag

    def handle_data(self, data):
        if self.texts:
            self.texts[-1] += data

    def find(self, tag: str, css_class: str = "") -> list[dict[str, str]]:
        return [
            attrs
            for name, attrs in self.elements
            if name == tag and (not css_class or css_class in attrs.get("class", "").split())
        ]


def _card(html: str, image_id: int) -> str:
    """The HTML of one image card on a page."""
    start = html.index(f'id="image-{image_id}"')
    start = html.rindex("<article", 0, start)
    return html[start : html.index("</article>", start)]


@pytest.fixture
def model(active_model):
    """The model the clip's job is queued for: the tiny one where the analysis is not looked at."""
    return active_model


@pytest.fixture
def clip(study, sonographer, media_root, model, django_capture_on_commit_callbacks):
    """A clip uploaded as a sonographer would, its job queued (the worker does not run here)."""
    with django_capture_on_commit_callbacks(execute=False):
        result = image_upload(
            study=study, data=make_mp4(FRAMES, fps=FPS), filename="sweep.mp4", uploaded_by=sonographer
        )
    assert result.image.is_cine and result.image.playback
    return result.image


def _analyse(clip: UltrasoundImage, capture) -> None:
    """Run the clip's job through the real worker service (batches of frames through the tiny model)."""
    job = clip.jobs.get()
    with capture(execute=False):
        classification_job_run(job_id=job.id)
    assert ClassificationJob.objects.get(id=job.id).status == ClassificationJob.Status.SUCCEEDED


def _study_page(client, user, clip) -> str:
    client.force_login(user)
    response = client.get(reverse("study-detail", args=[clip.study_id]))
    assert response.status_code == 200
    return response.content.decode()


class TestCineCardWhileAnalysing:
    def test_the_card_plays_the_clip_and_says_its_frames_are_being_analysed(self, client, sonographer, clip):
        card = _card(_study_page(client, sonographer, clip), clip.id)
        parsed = _Elements(card)

        assert f"Analysing {FRAMES} frames" in card
        (video,) = parsed.find("video", "cine-video")
        assert {"controls", "playsinline"} <= set(video)
        assert video["preload"] == "metadata"
        assert video["poster"] == reverse("image-preview", args=[clip.id])
        (source,) = parsed.find("source")
        assert source == {"src": reverse("image-playback", args=[clip.id]), "type": "video/mp4"}
        assert not parsed.find("div", "cine-strip")  # no timeline before the analysis

    def test_a_multiframe_dicom_dropped_on_the_page_comes_back_as_a_clips_card(
        self, client, sonographer, study, media_root, active_model, django_capture_on_commit_callbacks
    ):
        data = make_multiframe_dicom(8, patient_id=study.patient.mrn, frame_time_ms=50.0)
        upload = SimpleUploadedFile("loop.dcm", data, content_type="application/dicom")
        client.force_login(sonographer)

        with django_capture_on_commit_callbacks(execute=False):
            response = client.post(
                reverse("study-upload", args=[study.id]), {"file": upload}, headers={"X-Requested-With": "fetch"}
            )

        card = response.content.decode()
        assert response.status_code == 202
        assert "cine-card" in card and "Analysing 8 frames" in card
        assert "DICOM cine loop · 8 frames · 20 fps · 0:00.40" in card
        clip = UltrasoundImage.objects.get(study=study)
        assert _Elements(card).find("source")[0]["src"] == reverse("image-playback", args=[clip.id])

    def test_a_clip_without_a_frame_rate_leaves_the_rate_to_the_video(
        self, client, sonographer, study, media_root, active_model, django_capture_on_commit_callbacks
    ):
        data = make_multiframe_dicom(6, patient_id=study.patient.mrn, frame_time_ms=None)
        with django_capture_on_commit_callbacks(execute=False):
            clip = image_upload(study=study, data=data, filename="loop.dcm", uploaded_by=sonographer).image
        assert clip.frame_rate is None

        card = _card(_study_page(client, sonographer, clip), clip.id)

        assert "DICOM cine loop · 6 frames · 160×120" in card  # no rate or length it does not know
        assert "Analysing 6 frames" in card and _Elements(card).find("video", "cine-video")

    def test_the_poster_is_the_clips_first_frame_as_a_png(self, client, sonographer, clip):
        client.force_login(sonographer)

        response = client.get(reverse("image-preview", args=[clip.id]))

        assert response.status_code == 200
        assert response["Content-Type"] == "image/png"
        assert b"".join(response.streaming_content if response.streaming else [response.content])[:8] == (
            b"\x89PNG\r\n\x1a\n"
        )


@needs_real_images
class TestCineTimeline:
    @pytest.fixture
    def model(self, real_model):
        return real_model

    @pytest.fixture
    def analysed(self, clip, django_capture_on_commit_callbacks):
        _analyse(clip, django_capture_on_commit_callbacks)
        clip.refresh_from_db()
        return clip

    def test_the_strip_shows_each_frames_plane_and_flag_as_the_worker_found_them(self, client, sonographer, analysed):
        frames = analysed.jobs.get().cine_frames
        labels, flags = frames.frame_labels(), frames.flag_list()

        parsed = _Elements(_card(_study_page(client, sonographer, analysed), analysed.id))

        segments = parsed.find("rect", "seg")
        covered = [index for s in segments for index in range(int(s["data-start"]), int(s["data-end"]))]
        assert covered == list(range(FRAMES))  # every frame once, in order
        for segment in segments:
            for index in range(int(segment["data-start"]), int(segment["data-end"])):
                assert f"hue-{labels[index]}" in segment["class"].split()
                assert ("flagged" in segment["class"].split()) == flags[index]
        (strip,) = parsed.find("div", "cine-strip")
        assert strip["role"] == "slider" and strip["tabindex"] == "0"
        assert strip["aria-valuemax"] == str(FRAMES - 1)
        assert parsed.find("ul", "cine-legend")

    def test_each_key_frame_is_a_labelled_button_on_the_strip_and_a_link_to_its_still(
        self, client, sonographer, analysed
    ):
        key_frames = analysed.jobs.get().cine_frames.key_frames
        assert key_frames, "the tiny model found no frame that passes the review rule"
        stills = {still.clip_frame_index: still for still in analysed.key_frames.all()}

        card = _card(_study_page(client, sonographer, analysed), analysed.id)
        parsed = _Elements(card)

        markers = {int(marker["data-frame"]): marker for marker in parsed.find("button", "cine-marker")}
        assert set(markers) == {key["frame_index"] for key in key_frames}
        for key in key_frames:
            frame = key["frame_index"]
            plane = key["label"].replace("_", " ").capitalize()
            seconds = frame / FPS
            expected = f"{plane} key frame, frame {frame} of {FRAMES}, 0:{seconds:05.2f}"
            assert markers[frame]["aria-label"] == expected
            assert f'href="#image-{stills[frame].id}"' in card

    def test_a_key_frames_card_leads_back_to_its_clip_and_frame(self, client, sonographer, analysed):
        still = analysed.key_frames.order_by("clip_frame_index").first()

        card = _card(_study_page(client, sonographer, analysed), still.id)
        (link,) = _Elements(card).find("a", "seek-clip")

        assert f"Key frame {still.clip_frame_index} of clip" in card
        assert link["href"] == f"#image-{analysed.id}"
        assert link["data-frame"] == str(still.clip_frame_index)

    def test_the_cards_keep_to_the_content_security_policy(self, client, sonographer, analysed):
        card = _card(_study_page(client, sonographer, analysed), analysed.id)

        assert " style=" not in card and "<style" not in card and "<script" not in card
        assert " on" not in "".join(f" {name}" for _, attrs in _Elements(card).elements for name in attrs)


class TestCineWithoutKeyFrames:
    @pytest.fixture
    def model(self, settings, tmp_path, tiny_model_dir):
        """The tiny model with a review threshold above every confidence it gives: it flags every frame."""
        directory = tmp_path / "strict-models"
        directory.mkdir()
        shutil.copyfile(tiny_model_dir / "tiny-v1.keras", directory / "tiny-v1.keras")
        card = tiny_card(directory / "tiny-v1.keras", name="tiny-strict", needs_review_threshold=0.999)
        (directory / "tiny-strict-v1.card.json").write_text(json.dumps(card))
        settings.MODELS_DIR = directory
        return model_version_register(card_path=directory / "tiny-strict-v1.card.json", activate=True)

    def test_a_clip_whose_every_frame_is_flagged_shows_its_strip_and_says_no_key_frame_was_taken(
        self, client, sonographer, clip, django_capture_on_commit_callbacks
    ):
        _analyse(clip, django_capture_on_commit_callbacks)

        card = _card(_study_page(client, sonographer, clip), clip.id)

        parsed = _Elements(card)
        segments = parsed.find("rect", "seg")
        assert segments and all("flagged" in segment["class"].split() for segment in segments)
        assert not parsed.find("button", "cine-marker")
        assert "No frame passed the review rules, so no key frame was taken." in card
        assert f"flagged for review ({FRAMES} of {FRAMES} frames)" in card
        assert not clip.key_frames.exists()


@needs_real_images
class TestCinePoll:
    @pytest.fixture
    def model(self, real_model):
        return real_model

    def test_the_poll_brings_the_analysed_clip_and_its_new_key_frame_cards(
        self, client, sonographer, clip, django_capture_on_commit_callbacks
    ):
        client.force_login(sonographer)
        url = reverse("study-images", args=[clip.study_id])
        before = _Elements(client.get(url, headers={"X-Requested-With": "fetch"}).content.decode())
        versions_before = {attrs["id"]: attrs["data-version"] for attrs in before.find("article", "image-card")}

        _analyse(clip, django_capture_on_commit_callbacks)
        after_html = client.get(url, headers={"X-Requested-With": "fetch"}).content.decode()
        after = _Elements(after_html)

        versions_after = {attrs["id"]: attrs["data-version"] for attrs in after.find("article", "image-card")}
        assert versions_after[f"image-{clip.id}"] != versions_before[f"image-{clip.id}"]
        new_cards = set(versions_after) - set(versions_before)
        assert new_cards == {f"image-{still.id}" for still in clip.key_frames.all()}
        assert all(after.find("article", "image-card") for _ in new_cards)
        assert "cine-strip" in _card(after_html, clip.id)


@needs_real_images
class TestCineQueries:
    @pytest.fixture
    def model(self, real_model):
        return real_model

    def test_another_clip_and_its_key_frames_cost_the_poll_no_more_queries(
        self, client, sonographer, study, clip, django_capture_on_commit_callbacks
    ):
        _analyse(clip, django_capture_on_commit_callbacks)
        client.force_login(sonographer)
        url = reverse("study-images", args=[study.id])
        with CaptureQueriesContext(connection) as one_clip:
            client.get(url, headers={"X-Requested-With": "fetch"})
        with django_capture_on_commit_callbacks(execute=False):
            data = make_mp4(FRAMES, fps=FPS, planes=("fetal_thorax", "fetal_abdomen"))
            second = image_upload(study=study, data=data, filename="sweep-2.mp4", uploaded_by=sonographer).image
        _analyse(second, django_capture_on_commit_callbacks)

        with CaptureQueriesContext(connection) as two_clips:
            response = client.get(url, headers={"X-Requested-With": "fetch"})

        assert second.key_frames.exists() and f'id="image-{second.id}"' in response.content.decode()
        assert len(two_clips.captured_queries) == len(one_clip.captured_queries)


class TestPlaybackRoute:
    def test_sends_the_video_whole_with_its_headers(self, client, sonographer, clip):
        client.force_login(sonographer)

        response = client.get(reverse("image-playback", args=[clip.id]))

        body = b"".join(response.streaming_content)
        assert response.status_code == 200
        assert body == clip.playback.open("rb").read()
        assert response["Content-Type"] == "video/mp4"
        assert response["Accept-Ranges"] == "bytes"
        assert response["Content-Length"] == str(len(body))
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Cache-Control"] == "private, no-cache"
        assert response["Content-Disposition"].startswith("inline")

    def test_sends_one_byte_range_so_the_browser_can_seek(self, client, sonographer, clip):
        client.force_login(sonographer)
        whole = clip.playback.open("rb").read()

        response = client.get(reverse("image-playback", args=[clip.id]), headers={"Range": "bytes=100-299"})

        assert response.status_code == 206
        assert b"".join(response.streaming_content) == whole[100:300]
        assert response["Content-Range"] == f"bytes 100-299/{len(whole)}"
        assert response["Content-Length"] == "200"

    def test_a_range_past_the_end_is_refused_with_the_size(self, client, sonographer, clip):
        client.force_login(sonographer)
        size = clip.playback.size

        response = client.get(reverse("image-playback", args=[clip.id]), headers={"Range": f"bytes={size}-"})

        assert response.status_code == 416
        assert response["Content-Range"] == f"bytes */{size}"

    def test_another_clinics_user_gets_a_404(self, client, south_sonographer, clip):
        client.force_login(south_sonographer)

        response = client.get(reverse("image-playback", args=[clip.id]), headers={"Range": "bytes=0-9"})

        assert response.status_code == 404

    def test_a_still_has_no_video(self, client, sonographer, study, media_root, django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks(execute=False):
            still = image_upload(study=study, data=png_bytes(seed=5), filename="s.png", uploaded_by=sonographer).image
        client.force_login(sonographer)

        assert client.get(reverse("image-playback", args=[still.id])).status_code == 404

    def test_the_access_log_records_the_playback(self, client, sonographer, clip):
        from fetalsite.audit.models import AccessLogEntry

        client.force_login(sonographer)
        client.get(reverse("image-playback", args=[clip.id]), headers={"Range": "bytes=0-9"})

        entry = AccessLogEntry.objects.filter(object_id=clip.id).latest("id")
        assert (entry.user_id, entry.status_code) == (sonographer.id, 206)
