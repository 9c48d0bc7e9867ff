"""The frames of a cine loop (a multi-frame DICOM or an MP4/AVI/MOV clip), one at a time.

Plain Python (no Django): the upload's inspection (patients.cine_files) and the worker read clips through
this one module, so both see the same frames. A clip can hold hundreds of frames; they are decoded one by
one (pydicom's ``iter_pixels``, PyAV's ``decode``) and never all held at once, so memory stays bounded by a
frame, not by the clip.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image

DICOM = "DICOM"
# A frame whose colour channels never differ by more than this (out of 255) is grey: lossy video codecs
# leave a grey ultrasound frame's chroma a little off neutral, and grey frames are a third of the size.
_GREY_TOLERANCE = 8
_ROTATIONS = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}


class ClipError(Exception):
    """A clip that cannot be read; ``code`` says why (``cine_corrupt``, ``video_unsupported``)."""

    def __init__(self, message: str, *, code: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ClipInfo:
    """A clip's facts from its header (container, frame count, frames per second, frame size in pixels)."""

    container: str
    frame_count: int
    frame_rate: float | None
    width: int
    height: int


def sniff_video(data: bytes) -> str | None:
    """ "MP4", "MOV" or "AVI" by the container's magic bytes (never the filename), else None."""
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return "AVI"
    box = data[4:8]
    if box == b"ftyp":
        return "MOV" if data[8:12] == b"qt  " else "MP4"
    # QuickTime files older than the ftyp box start straight with one of these atoms.
    if box in (b"moov", b"mdat", b"wide", b"pnot") and len(data) > 16:
        return "MOV"
    return None


def is_dicom(data: bytes) -> bool:
    return data[128:132] == b"DICM"


def clip_info(data: bytes) -> ClipInfo:
    """The clip's facts from its header (a video's frame count by demuxing packets when the container does
    not say, which decodes nothing); ClipError when it cannot be read."""
    if is_dicom(data):
        return _dicom_info(data)
    container = sniff_video(data)
    if container is None:
        raise ClipError("The file is neither a DICOM file nor an MP4, MOV or AVI video.", code="video_unsupported")
    return _video_info(data, container)


def iter_frames(data: bytes) -> Iterator[Image.Image]:
    """The clip's frames in order as upright 8-bit "L" or "RGB" images, decoded one at a time.

    ClipError (``cine_corrupt``) when a frame cannot be decoded, at that frame: a consumer that needs every
    frame (the upload's check) counts them itself."""
    if is_dicom(data):
        return _dicom_frames(data)
    if sniff_video(data) is None:
        raise ClipError("The file is neither a DICOM file nor an MP4, MOV or AVI video.", code="video_unsupported")
    return _video_frames(data)


# DICOM ---------------------------------------------------------------------------------------------------


def dicom_frame_rate(dataset) -> float | None:
    """Frames per second: 1000 / Frame Time (ms), else Cine Rate, else Recommended Display Frame Rate."""
    for keyword, to_rate in (
        ("FrameTime", lambda ms: 1000.0 / ms),
        ("CineRate", float),
        ("RecommendedDisplayFrameRate", float),
    ):
        value = dataset.get(keyword)
        try:
            number = float(value) if value not in (None, "") else 0.0
        except (TypeError, ValueError):
            continue  # a malformed optional rate is treated as absent
        if number > 0:
            return to_rate(number)
    return None


def _read_dicom_header(data: bytes):
    import pydicom  # noqa: PLC0415 - loaded on the first DICOM clip, not by every importer

    try:
        return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    except Exception as error:  # pydicom raises many types on malformed input
        raise ClipError(
            f"The DICOM file is damaged and cannot be read ({error.__class__.__name__}).", code="cine_corrupt"
        ) from None


def _dicom_info(data: bytes) -> ClipInfo:
    dataset = _read_dicom_header(data)
    try:
        frames, width, height = int(dataset.get("NumberOfFrames") or 1), int(dataset.Columns), int(dataset.Rows)
    except (AttributeError, TypeError, ValueError):
        raise ClipError("The DICOM header does not give the frame size.", code="cine_corrupt") from None
    return ClipInfo(
        container=DICOM, frame_count=frames, frame_rate=dicom_frame_rate(dataset), width=width, height=height
    )


def _dicom_frames(data: bytes) -> Iterator[Image.Image]:
    from pydicom.pixels import iter_pixels  # noqa: PLC0415

    dataset = _read_dicom_header(data)
    try:
        for pixels in iter_pixels(io.BytesIO(data)):
            yield dicom_display_image(pixels, dataset)
    except ClipError:
        raise
    except Exception as error:  # a decoder's error on a damaged frame: a refusal, never a 500
        raise ClipError(
            f"A frame of the DICOM file cannot be decoded ({error.__class__.__name__}).", code="cine_corrupt"
        ) from None


def dicom_display_image(pixels: np.ndarray, dataset) -> Image.Image:
    """One frame's decoded pixels as 8-bit grey or RGB: modality LUT, VOI LUT or window, MONOCHROME1
    inverted, palette applied (single-frame files and every frame of a clip alike)."""
    from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut  # noqa: PLC0415

    photometric = str(dataset.get("PhotometricInterpretation") or "").strip()
    if photometric == "PALETTE COLOR":
        return Image.fromarray(to_uint8(apply_color_lut(pixels, dataset)))
    if pixels.ndim == 3:  # YBR is converted to RGB by pydicom
        return Image.fromarray(to_uint8(pixels))
    transformed = "RescaleSlope" in dataset or "ModalityLUTSequence" in dataset
    windowed = "WindowCenter" in dataset or "VOILUTSequence" in dataset
    if windowed:
        grey = to_uint8(apply_voi_lut(apply_modality_lut(pixels, dataset), dataset), window_range(dataset))
    else:
        grey = to_uint8(apply_modality_lut(pixels, dataset) if transformed else pixels)
    if photometric == "MONOCHROME1":
        grey = 255 - grey  # MONOCHROME1: low values are white
    return Image.fromarray(grey)


def window_range(dataset) -> tuple[float, float]:
    """The output range of pydicom's apply_voi_lut: the VOI LUT's entries, else the stored bits'."""
    if "VOILUTSequence" in dataset:
        return 0.0, float(2 ** int(dataset.VOILUTSequence[0].LUTDescriptor[2]) - 1)
    bits = int(dataset.BitsStored)
    if int(dataset.get("PixelRepresentation") or 0):
        return float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    return 0.0, float(2**bits - 1)


def to_uint8(values: np.ndarray, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """8-bit values as they are; wider ones scaled by ``value_range`` (a window's output), else by their own
    range (as a 16-bit PNG is)."""
    if values.dtype == np.uint8 and value_range is None:
        return np.ascontiguousarray(values)
    values = values.astype(np.float32)
    low, high = value_range or (float(values.min()), float(values.max()))
    scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    return np.ascontiguousarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))


# Video ---------------------------------------------------------------------------------------------------


def _open_video(data: bytes):
    import av  # noqa: PLC0415 - loaded on the first video, not by every importer

    try:
        container = av.open(io.BytesIO(data), mode="r")
    except (av.FFmpegError, ValueError) as error:
        raise ClipError(f"The video cannot be read ({_reason(error)}).", code="cine_corrupt") from None
    if not container.streams.video:
        container.close()
        raise ClipError("The file holds no video stream.", code="video_unsupported")
    stream = container.streams.video[0]
    if stream.codec_context is None or not stream.codec_context.width:
        container.close()
        raise ClipError("The video's codec cannot be decoded by this server.", code="video_unsupported")
    return container, stream


def _reason(error: Exception) -> str:
    return str(getattr(error, "strerror", "") or error.__class__.__name__)


def _video_info(data: bytes, container_name: str) -> ClipInfo:
    import av  # noqa: PLC0415

    container, stream = _open_video(data)
    with container:
        rate = float(stream.average_rate) if stream.average_rate else None
        frames = stream.frames
        if not frames:  # the container does not say: count the packets, which decodes nothing
            try:
                frames = sum(1 for packet in container.demux(stream) if packet.size)
            except av.FFmpegError as error:
                raise ClipError(f"The video cannot be read ({_reason(error)}).", code="cine_corrupt") from None
        width, height = stream.codec_context.width, stream.codec_context.height
    return ClipInfo(container=container_name, frame_count=frames, frame_rate=rate, width=width, height=height)


def _video_frames(data: bytes) -> Iterator[Image.Image]:
    import av  # noqa: PLC0415

    container, stream = _open_video(data)
    stream.thread_type = "AUTO"  # frame threads: decoding is most of an upload's inspection
    grey = None
    with container:
        try:
            for frame in container.decode(stream):
                if frame.is_corrupt:
                    raise ClipError("A frame of the video is damaged.", code="cine_corrupt")
                rgb = frame.to_ndarray(format="rgb24")
                if grey is None:  # the first frame decides, so every frame of a clip has one mode
                    grey = _is_grey(rgb)
                image = Image.fromarray(rgb).convert("L") if grey else Image.fromarray(rgb)
                yield _upright(image, frame.rotation)
        except av.FFmpegError as error:
            raise ClipError(
                f"A frame of the video cannot be decoded ({_reason(error)}).", code="cine_corrupt"
            ) from None


def _is_grey(rgb: np.ndarray) -> bool:
    channels = rgb.astype(np.int16)
    spread = np.maximum(np.abs(channels[..., 0] - channels[..., 1]), np.abs(channels[..., 1] - channels[..., 2]))
    return int(spread.max()) <= _GREY_TOLERANCE


def _upright(image: Image.Image, rotation: int) -> Image.Image:
    """Apply the display matrix's rotation (degrees counterclockwise), as players do."""
    method = _ROTATIONS.get(round(rotation or 0) % 360)
    return image.transpose(method) if method is not None else image
