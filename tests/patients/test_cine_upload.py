"""Cine loops uploaded (page and API) and received (C-STORE): a multi-frame DICOM file or an MP4/MOV/AVI video
becomes one image of kind cine with its frame count and rate, its original unchanged and a playback MP4 that
plays every frame; refusals (over the limits, damaged, not a video) leave nothing behind. C-STORE of a clip:
tests/dicom/test_cine_receive.py."""

from __future__ import annotations

import hashlib
import html
import io

import av
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit

from classifier.ml.frames import ClipError, clip_info, iter_frames, sniff_video
from classifier.models import ClassificationJob
from patients.cine_files import CineFacts, CineRefused, inspect_cine_bytes, inspect_dicom_file
from patients.dicom_files import DicomRefused
from patients.models import DicomInstance, UltrasoundImage
from tests.cine_samples import make_avi, make_mov, make_mp4, make_multiframe_dicom
from tests.factories import StudyFactory

pytestmark = pytest.mark.django_db
MRN = "MRN-DICOM-1"  # the Patient ID tests.dicom_samples writes

CLIPS = {
    "mp4": (lambda: make_mp4(24), "clip.mp4", "MP4", 24, 25.0),
    "mov": (lambda: make_mov(20, fps=30), "clip.mov", "MOV", 20, 30.0),
    "avi": (lambda: make_avi(16, fps=10), "clip.avi", "AVI", 16, 10.0),
    "avi mpeg4": (lambda: make_avi(12, codec="mpeg4"), "clip.avi", "AVI", 12, 25.0),
    "dicom monochrome2": (lambda: make_multiframe_dicom(10, frame_time_ms=50), "loop.dcm", "DICOM", 10, 20.0),
    "dicom jpeg baseline": (
        lambda: make_multiframe_dicom(8, photometric="YBR_FULL_422", transfer_syntax=JPEGBaseline8Bit),
        "loop.dcm",
        "DICOM",
        8,
        25.0,
    ),
}


@pytest.fixture
def cine_study(sonographer):
    return StudyFactory(patient__clinic=sonographer.clinic, patient__mrn=MRN, created_by=sonographer)


def stored_files(media_root) -> list:
    return [p for p in media_root.rglob("*") if p.is_file()] if media_root.exists() else []


def nothing_stored(media_root) -> bool:
    return (
        stored_files(media_root) == []
        and not UltrasoundImage.objects.exists()
        and not DicomInstance.objects.exists()
        and not ClassificationJob.objects.exists()
    )


def played_frames(data: bytes) -> tuple[int, str, tuple[int, int]]:
    """What a player sees of a playback MP4: its decoded frames, codec and size."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        count = sum(1 for _ in container.decode(stream))
        return count, stream.codec_context.name, (stream.width, stream.height)


def page_upload(client, study, name: str, data: bytes):
    return client.post(
        reverse("study-upload", args=[study.id]),
        {"file": SimpleUploadedFile(name, data)},
        HTTP_X_REQUESTED_WITH="fetch",
    )


def api_upload(client, study, name: str, data: bytes):
    part = SimpleUploadedFile(name, data, content_type="application/octet-stream")
    return client.post(f"/api/v1/studies/{study.id}/images/", {"file": [part]}, format="multipart")


class TestFrames:
    def test_each_container_is_sniffed_by_its_bytes(self):
        assert [sniff_video(make()) for make in (make_mp4, make_mov, make_avi)] == ["MP4", "MOV", "AVI"]
        assert sniff_video(b"just some text named clip.mp4") is None

    def test_a_clip_is_read_frame_by_frame_grey_or_colour(self):
        grey, colour = list(iter_frames(make_mp4(6))), list(iter_frames(make_mp4(6, rgb=True)))
        assert [f.mode for f in grey] == ["L"] * 6 and [f.mode for f in colour] == ["RGB"] * 6
        assert grey[0].size == (320, 240) and clip_info(make_mp4(6)).frame_count == 6

    def test_dicom_frame_rate_comes_from_frame_time_then_cine_rate(self):
        assert clip_info(make_multiframe_dicom(4, frame_time_ms=40)).frame_rate == pytest.approx(25.0)
        assert clip_info(make_multiframe_dicom(4, frame_time_ms=None, CineRate=12)).frame_rate == 12.0
        assert clip_info(make_multiframe_dicom(4, frame_time_ms=None)).frame_rate is None

    def test_an_unreadable_video_is_a_clip_error(self):
        with pytest.raises(ClipError) as error:
            clip_info(make_mp4(8)[:2000])
        assert error.value.code == "cine_corrupt"


class TestInspect:
    def test_a_multi_frame_dicom_is_a_cine_with_its_header(self):
        facts = inspect_dicom_file(make_multiframe_dicom(6, frame_time_ms=40))
        assert isinstance(facts, CineFacts) and (facts.frame_count, facts.frame_rate) == (6, 25.0)
        assert (facts.dicom.number_of_frames, facts.dicom.frame_time_ms) == (6, 40.0)
        assert played_frames(facts.playback_mp4)[0] == 6

    def test_the_playback_is_bounded_and_even(self):
        facts = inspect_cine_bytes(make_mp4(4, size=(1282, 962)))
        count, codec, size = played_frames(facts.playback_mp4)
        assert (count, codec, size) == (4, "h264", (1024, 768))
        assert facts.playback_mp4[4:8] == b"ftyp" and facts.playback_mp4.index(b"moov") < 100  # +faststart

    def test_an_unknown_rate_plays_at_25(self):
        facts = inspect_cine_bytes(make_multiframe_dicom(5, frame_time_ms=None))
        assert facts.frame_rate is None
        with av.open(io.BytesIO(facts.playback_mp4)) as container:
            assert container.streams.video[0].average_rate == 25


class TestUpload:
    @pytest.mark.parametrize("kind", CLIPS)
    def test_the_page_stores_one_cine_with_its_playback_and_a_queued_job(
        self, client, sonographer, cine_study, media_root, kind
    ):
        make, name, fmt, frames, rate = CLIPS[kind]
        data = make()
        client.force_login(sonographer)

        response = page_upload(client, cine_study, name, data)

        assert response.status_code == 202, response.content.decode()[:500]
        image = cine_study.images.get()
        assert (image.kind, image.format, image.frame_count) == (UltrasoundImage.Kind.CINE, fmt, frames)
        assert image.frame_rate == pytest.approx(rate, rel=1e-3)
        assert image.original.read() == data and image.sha256 == hashlib.sha256(data).hexdigest()
        assert image.playback.name.startswith(f"playback/clinic-{sonographer.clinic_id}/")
        assert image.playback.name.endswith(".mp4")
        assert played_frames(image.playback.read())[:2] == (frames, "h264")
        assert ClassificationJob.objects.filter(image=image, status=ClassificationJob.Status.QUEUED).count() == 1
        if fmt == "DICOM":
            assert (image.dicom.number_of_frames, image.dicom.sop_class_uid) == (
                frames,
                "1.2.840.10008.5.1.4.1.1.3.1",
            )

    @pytest.mark.parametrize("kind", CLIPS)
    def test_the_api_stores_one_cine(self, api_client, integrator, media_root, kind):
        make, name, fmt, frames, _ = CLIPS[kind]
        data = make()
        study = StudyFactory(patient__clinic=integrator.clinic, patient__mrn=MRN, created_by=integrator)

        response = api_upload(api_client, study, name, data)

        assert response.status_code == 202, response.json()
        image = study.images.get()
        assert (image.kind, image.format, image.frame_count, image.original.read()) == ("cine", fmt, frames, data)
        assert played_frames(image.playback.read())[0] == frames
        assert ClassificationJob.objects.filter(image=image, status=ClassificationJob.Status.QUEUED).count() == 1
        media_types = {"MP4": "video/mp4", "MOV": "video/quicktime", "AVI": "video/x-msvideo"}
        assert response.json()["original"]["media_type"] == media_types.get(fmt, "application/dicom")

    def test_the_same_bytes_twice_are_one_image(self, client, sonographer, cine_study):
        data = make_mp4(8)
        client.force_login(sonographer)
        first, second = page_upload(client, cine_study, "a.mp4", data), page_upload(client, cine_study, "b.mp4", data)
        assert (first.status_code, second.status_code) == (202, 200)
        assert UltrasoundImage.objects.count() == 1 and ClassificationJob.objects.count() == 1

    def test_the_original_is_served_with_its_video_media_type(self, client, sonographer, cine_study):
        client.force_login(sonographer)
        page_upload(client, cine_study, "clip.mov", make_mov(6))
        image = cine_study.images.get()
        response = client.get(reverse("image-original", args=[image.id]))
        assert response.status_code == 200 and response["Content-Type"] == "video/quicktime"


def _truncated_mp4() -> bytes:
    data = make_mp4(24)
    return data[: len(data) * 2 // 3]


REFUSED = {
    "too many frames": (lambda: make_mp4(12), "cine_too_many_frames", "has 12 frames; this server accepts at most 10"),
    "too long": (lambda: make_mp4(9, fps=1), "cine_too_long", "lasts 9.0 s"),
    "dicom too many frames": (lambda: make_multiframe_dicom(12), "cine_too_many_frames", "(CINE_MAX_FRAMES)"),
    "truncated mp4": (_truncated_mp4, "cine_corrupt", ""),
    "frames over the pixel limit": (lambda: make_mp4(4, size=(640, 480)), "too_many_pixels", "640x480"),
    "all frames over the clip's pixel limit": (
        lambda: make_mp4(8, size=(320, 240)),
        "too_many_pixels",
        "8 frames of 320x240 pixels, 0.6 million in all; this server accepts at most 0.5 million",
    ),
    "dicom pixel data cut short": (lambda: make_multiframe_dicom(6, NumberOfFrames=9), "dicom_corrupt", "shorter"),
    "dicom jpeg frames missing": (
        lambda: make_multiframe_dicom(6, transfer_syntax=JPEGBaseline8Bit, NumberOfFrames=9),
        "cine_corrupt",
        "Only 6 of the clip's 9 frames",
    ),
}


class TestRefusals:
    @pytest.fixture(autouse=True)
    def _limits(self, settings):
        settings.CINE_MAX_FRAMES, settings.CINE_MAX_DURATION_S, settings.UPLOAD_MAX_PIXELS = 10, 8, 320 * 240
        settings.CINE_MAX_TOTAL_PIXELS = 7 * 320 * 240  # 7 frames of the largest accepted size

    @pytest.mark.parametrize("kind", REFUSED)
    def test_the_page_refuses_each_and_leaves_nothing(self, client, sonographer, cine_study, media_root, kind):
        make, code, words = REFUSED[kind]
        client.force_login(sonographer)

        response = page_upload(client, cine_study, "clip.dcm" if kind.startswith("dicom") else "clip.mp4", make())

        body = html.unescape(response.content.decode())
        assert response.status_code == 400 and f'data-code="{code}"' in body, body[:600]
        assert words in body
        assert nothing_stored(media_root)

    def test_the_api_refuses_with_the_code_and_leaves_nothing(self, api_client, integrator, media_root):
        study = StudyFactory(patient__clinic=integrator.clinic, created_by=integrator)
        response = api_upload(api_client, study, "clip.mp4", make_mp4(12))
        assert response.status_code == 400 and response.json()["code"] == "cine_too_many_frames"
        assert "(CINE_MAX_FRAMES)" in response.json()["fields"]["file"][0]
        assert nothing_stored(media_root)

    def test_a_text_file_named_mp4_is_refused_as_not_a_video(self, client, sonographer, cine_study, media_root):
        client.force_login(sonographer)
        response = page_upload(client, cine_study, "clip.mp4", b"this is not a video, whatever its name says\n")
        body = response.content.decode()
        assert response.status_code == 400 and 'data-code="video_unsupported"' in body
        assert "named .mp4 but is not an MP4, MOV or AVI video" in body
        assert nothing_stored(media_root)

    def test_a_video_without_a_known_container_is_unsupported(self):
        with pytest.raises(CineRefused) as refused:
            inspect_cine_bytes(b"\x1aE\xdf\xa3 a Matroska file")
        assert refused.value.code == "video_unsupported"

    def test_a_refusal_is_a_dicom_refusal_for_the_network_paths(self):
        with pytest.raises(DicomRefused) as refused:
            inspect_dicom_file(make_multiframe_dicom(12, transfer_syntax=ExplicitVRLittleEndian))
        assert refused.value.code == "cine_too_many_frames"
