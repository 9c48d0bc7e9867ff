"""Read a cine loop (a multi-frame DICOM file or an MP4/AVI/MOV video): its facts, every frame checked, and the
renditions a browser shows (its first frame as PNG, the clip as H.264 MP4).

The clip's limits (CINE_MAX_FRAMES, CINE_MAX_DURATION_S, and the upload's pixel limits per frame) are checked
from the header before a pixel is decoded; then one streaming pass decodes each frame once, checks it and
encodes it into the playback rendition, so memory holds a frame or two, never the clip. A clip with a frame
that cannot be decoded is refused (``cine_corrupt``): nothing of it is stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from django.conf import settings
from PIL import Image

from classifier.ml.frames import ClipError, ClipInfo, clip_info, dicom_frame_rate, iter_frames, sniff_video
from classifier.ml.preprocessing import to_bounded_8bit
from patients.dicom_files import (
    DICOM_EXTENSION,
    DICOM_FORMAT,
    DicomFacts,
    DicomHeader,
    DicomRefused,
    check_pixel_data_length,
    dicom_still_facts,
    is_part10,
    read_dicom,
)
from patients.imaging import DERIVED_MAX_SIDE, display_png

PLAYBACK_MAX_SIDE = 1024  # the browser's rendition: a clinic screen's player, not the diagnostic pixels
PLAYBACK_DEFAULT_RATE = 25  # frames per second when the clip does not say
# x264's "veryfast": about half the time of its default "medium" for a few percent more bytes; a 200-frame
# 640x480 clip encodes in well under a second or two here (docs/performance.md).
PLAYBACK_PRESET = "veryfast"
VIDEO_EXTENSIONS = {"MP4": "mp4", "MOV": "mov", "AVI": "avi"}


class CineRefused(DicomRefused):
    """A cine loop this server does not accept; ``code`` says why (over the limits, damaged, unsupported).

    A DicomRefused, so every path that answers a refused DICOM file (page, API, C-STORE, STOW-RS) answers it."""


@dataclass(frozen=True)
class CineFacts(DicomFacts):
    """A cine loop's facts: ``derived_png`` is its first frame, ``playback_mp4`` the whole clip for a browser;
    ``dicom`` is the header of a multi-frame DICOM file (None for a video)."""

    frame_count: int = 0
    frame_rate: float | None = None
    playback_mp4: bytes = b""


def inspect_cine_bytes(data: bytes) -> CineFacts:
    """The facts of an acceptable cine loop (a DICOM file or an MP4/MOV/AVI video, told by their bytes), or
    CineRefused / DicomRefused naming what is not accepted."""
    if is_part10(data):
        dataset, header = read_dicom(data)
        return dicom_cine_facts(data, dataset=dataset, header=header)
    if len(data) > settings.UPLOAD_MAX_BYTES:
        limit_mb = settings.UPLOAD_MAX_BYTES / (1024 * 1024)
        raise CineRefused(f"The file is larger than the {limit_mb:.0f} MB limit.", code="too_large", http_status=413)
    container = sniff_video(data)
    if container is None:
        raise CineRefused("The file is not an MP4, MOV or AVI video.", code="video_unsupported")
    try:
        info = clip_info(data)
    except ClipError as error:
        raise CineRefused(str(error), code=error.code) from None
    _check_limits(info)
    return _facts(data, info=info, format=container, extension=VIDEO_EXTENSIONS[container], header=None)


def inspect_dicom_file(data: bytes) -> DicomFacts:
    """A DICOM file's facts: a still's (DicomFacts), or a cine loop's (CineFacts) when it holds several frames.
    The one DICOM entry point of the page, the API, C-STORE and STOW-RS (patients.services)."""
    dataset, header = read_dicom(data)
    if header.number_of_frames > 1:
        return dicom_cine_facts(data, dataset=dataset, header=header)
    return dicom_still_facts(data, dataset=dataset, header=header)


def dicom_cine_facts(data: bytes, *, dataset, header: DicomHeader) -> CineFacts:
    """A multi-frame DICOM file's facts, its header already read and checked (patients.dicom_files.read_dicom)."""
    info = ClipInfo(
        container=DICOM_FORMAT,
        frame_count=header.number_of_frames,
        frame_rate=dicom_frame_rate(dataset),
        width=int(dataset.Columns),
        height=int(dataset.Rows),
    )
    _check_limits(info)
    check_pixel_data_length(dataset, header)
    return _facts(data, info=info, format=DICOM_FORMAT, extension=DICOM_EXTENSION, header=header)


def _check_limits(info: ClipInfo) -> None:
    """The clip's frame count and duration, and a frame's size, against the limits: before any decoding."""
    if info.frame_count < 1:
        raise CineRefused("The clip holds no frames.", code="cine_corrupt")
    if info.frame_count > settings.CINE_MAX_FRAMES:
        raise CineRefused(
            f"The clip has {info.frame_count} frames; this server accepts at most {settings.CINE_MAX_FRAMES} "
            "(CINE_MAX_FRAMES).",
            code="cine_too_many_frames",
        )
    if info.frame_rate and info.frame_count / info.frame_rate > settings.CINE_MAX_DURATION_S:
        raise CineRefused(
            f"The clip lasts {info.frame_count / info.frame_rate:.1f} s; this server accepts at most "
            f"{settings.CINE_MAX_DURATION_S:g} s (CINE_MAX_DURATION_S).",
            code="cine_too_long",
        )
    pixels = info.width * info.height
    if pixels > settings.UPLOAD_MAX_PIXELS:
        raise CineRefused(
            f"The clip's frames are {info.width}x{info.height} pixels, more than this server accepts.",
            code="too_many_pixels",
        )
    # Memory is bounded per frame (frames are streamed), but the time the upload's check and the worker take grows
    # with every frame's pixels: 600 frames of 40 MP each would hold a web worker for minutes.
    if pixels * info.frame_count > settings.CINE_MAX_TOTAL_PIXELS:
        raise CineRefused(
            f"The clip has {info.frame_count} frames of {info.width}x{info.height} pixels, "
            f"{pixels * info.frame_count / 1e6:.1f} million in all; this server accepts at most "
            f"{settings.CINE_MAX_TOTAL_PIXELS / 1e6:.1f} million (CINE_MAX_TOTAL_PIXELS).",
            code="too_many_pixels",
        )
    needed, limit = pixels * 3 * 8, settings.UPLOAD_MAX_DECODED_BYTES  # RGB, as wide as a DICOM LUT's output
    if needed > limit:
        mb = 1024 * 1024
        raise CineRefused(
            f"A frame of the clip needs {needed / mb:.0f} MB of memory once decoded, more than the "
            f"{limit / mb:.0f} MB limit.",
            code="decoded_too_large",
        )


def _facts(data: bytes, *, info: ClipInfo, format: str, extension: str, header: DicomHeader | None) -> CineFacts:
    first, frame_count, playback = _decode_and_encode(data, info=info)
    derived = to_bounded_8bit(first, max_side=DERIVED_MAX_SIDE)
    return CineFacts(
        format=format,
        extension=extension,
        width=derived.width,
        height=derived.height,
        byte_size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        derived_png=display_png(derived),
        original_width=info.width,
        original_height=info.height,
        dicom=header,
        frame_count=frame_count,
        frame_rate=info.frame_rate,
        playback_mp4=playback,
    )


def _decode_and_encode(data: bytes, *, info: ClipInfo) -> tuple[Image.Image, int, bytes]:
    """One pass over the frames: each decoded once, checked, and encoded into the playback MP4.

    Returns the first frame, the number of frames and the MP4. A frame that does not decode, or fewer frames
    than the header declares (a truncated file), is ``cine_corrupt``; more than CINE_MAX_FRAMES is refused
    as soon as the count passes it, whatever the header said."""
    encoder = PlaybackEncoder(frame_rate=info.frame_rate)
    first, count = None, 0
    try:
        for frame in iter_frames(data):
            count += 1
            if count > settings.CINE_MAX_FRAMES:
                raise CineRefused(
                    f"The clip has more than {settings.CINE_MAX_FRAMES} frames; this server accepts at most "
                    f"{settings.CINE_MAX_FRAMES} (CINE_MAX_FRAMES).",
                    code="cine_too_many_frames",
                )
            if first is None:
                first = frame.copy()
            encoder.add(frame)
        playback = encoder.finish()
    except ClipError as error:
        raise CineRefused(f"The clip cannot be read: {error}", code=error.code) from None
    finally:
        encoder.close()
    if first is None or count < info.frame_count:
        raise CineRefused(
            f"Only {count} of the clip's {info.frame_count} frames could be decoded; the file is damaged or truncated.",
            code="cine_corrupt",
        )
    return first, count, playback


class PlaybackEncoder:
    """The browser's rendition, frame by frame: H.264 (libx264) in MP4, 4:2:0, even dimensions, the long side
    at most PLAYBACK_MAX_SIDE, the clip's frame rate (25 when unknown), the index first (``+faststart``) so
    playback starts before the whole file has arrived. Its size is the first frame's, as the frames come
    upright (a phone's rotated video is turned by classifier.ml.frames), not the container's coded size."""

    def __init__(self, *, frame_rate: float | None):
        import av  # noqa: PLC0415 - loaded on the first clip, not by every process that imports patients

        self._rate = Fraction(frame_rate or PLAYBACK_DEFAULT_RATE).limit_denominator(1001)
        # +faststart moves the index by reading the finished file back: a real file, not a BytesIO.
        self._folder = tempfile.TemporaryDirectory(prefix="playback-")
        self._path = Path(self._folder.name) / "playback.mp4"
        self._container = av.open(str(self._path), mode="w", format="mp4", options={"movflags": "+faststart"})
        self._stream = None
        self._index = 0

    def _open_stream(self, width: int, height: int) -> None:
        scale = min(1.0, PLAYBACK_MAX_SIDE / max(width, height))
        self.width, self.height = _even(width * scale), _even(height * scale)
        self._stream = self._container.add_stream("libx264", rate=self._rate)
        self._stream.width, self._stream.height, self._stream.pix_fmt = self.width, self.height, "yuv420p"
        self._stream.options = {"preset": PLAYBACK_PRESET}

    def add(self, image: Image.Image) -> None:
        import av  # noqa: PLC0415

        if self._stream is None:
            self._open_stream(*image.size)
        grey = image.mode == "L"
        frame = av.VideoFrame.from_ndarray(np.asarray(image), format="gray" if grey else "rgb24")
        frame = frame.reformat(width=self.width, height=self.height, format="yuv420p")
        frame.pts = self._index
        self._index += 1
        self._container.mux(self._stream.encode(frame))

    def finish(self) -> bytes:
        if self._stream is None:
            raise ClipError("The clip holds no frames.", code="cine_corrupt")
        self._container.mux(self._stream.encode())
        self._container.close()
        self._container = None
        return self._path.read_bytes()

    def close(self) -> None:
        """Release the encoder and its file, finished or not (a refused clip leaves nothing behind)."""
        if self._container is not None:
            # An unfinished encoder may not close cleanly; its file goes with the folder anyway.
            with contextlib.suppress(Exception):
                self._container.close()
            self._container = None
        self._folder.cleanup()


def _even(length: float) -> int:
    """4:2:0 needs even dimensions: the nearest even length, at least 2."""
    return max(2, 2 * math.floor(length / 2))
