"""Cine loops made for tests: MP4, AVI and MOV clips (PyAV) and multi-frame DICOM files (pydicom).

The frames are a probe's sweep over real ultrasound images from ../shared/data/fetal-planes: each frame is the
image shifted by a few pixels from the one before, and a clip crosses planes in order (by default the first half
shows a brain, the second half a femur), so the worker's per-plane key frames have something to find. When the
data set is absent, each plane is a generated picture of its own (smooth speckle with a different shape).
"""

from __future__ import annotations

import csv
import functools
import io
import math
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, UltrasoundMultiFrameImageStorage

from tests.dicom_samples import dicom_bytes

DATA = Path(__file__).resolve().parents[2] / "shared/data/fetal-planes"
TWO_PLANES = ("fetal_brain", "fetal_femur")
# The codec's pixel format each container's test clip is written in (what such files usually hold).
_PIXEL_FORMATS = {"h264": "yuv420p", "libx264": "yuv420p", "mpeg4": "yuv420p", "mjpeg": "yuvj420p"}
_MARGIN = 16  # pixels the sweep can move the image by, so a shifted frame never shows an edge


def has_real_images() -> bool:
    return (DATA / "manifest.csv").is_file()


@functools.cache
def _plane_image(label: str) -> Image.Image:
    """The first image of ``label`` in the data set's manifest, grey; a generated one when the set is absent."""
    if has_real_images():
        with open(DATA / "manifest.csv", newline="") as manifest:
            for row in csv.DictReader(manifest):
                if row["label"] == label and (DATA / row["file"]).is_file():
                    with Image.open(DATA / row["file"]) as image:
                        return image.convert("L")
    return _generated_plane(label)


def _generated_plane(label: str, width: int = 640, height: int = 480) -> Image.Image:
    seed = sum(label.encode())
    grains = np.random.default_rng(seed).integers(30, 200, size=(height // 10, width // 10), dtype=np.uint8)
    speckle = np.asarray(Image.fromarray(grains).resize((width, height), Image.Resampling.BILINEAR)).astype(float)
    y, x = np.mgrid[0:height, 0:width]
    fan = np.hypot(x - width / 2, y) < height
    if seed % 2:  # a round head or an oblong bone, so the two planes differ in shape too
        shape = np.hypot((x - width / 2) / 1.3, y - height / 2) < height / 4
    else:
        shape = (abs(y - height / 2 - (x - width / 2) / 4) < 12) & (abs(x - width / 2) < width / 4)
    return Image.fromarray(np.clip(speckle * fan + 80 * shape, 0, 255).astype(np.uint8))


def sweep(
    frames: int, *, size: tuple[int, int] = (320, 240), planes: tuple[str, ...] = TWO_PLANES
) -> Iterator[np.ndarray]:
    """``frames`` grey frames of ``size`` (width, height): the planes in turn, each frame moved a few pixels."""
    width, height = size
    for index in range(frames):
        plane = planes[index * len(planes) // frames]
        base = _plane_image(plane).resize((width + 2 * _MARGIN, height + 2 * _MARGIN), Image.Resampling.BILINEAR)
        dx = round(_MARGIN + (_MARGIN - 2) * math.sin(index / 5))
        dy = round(_MARGIN + (_MARGIN - 2) * math.sin(index / 7 + 1) / 2)
        yield np.asarray(base.crop((dx, dy, dx + width, dy + height)))


def colour(grey: np.ndarray) -> np.ndarray:
    """An RGB version of a grey frame whose channels differ (as a colour Doppler overlay would make them)."""
    return np.stack([grey, np.roll(grey, 3, axis=1), 255 - grey], axis=-1)


def _video(fmt: str, frames: int, *, fps: float, size: tuple[int, int], codec: str, rgb: bool, planes) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=fmt) as container:
        stream = container.add_stream(codec, rate=round(fps) if float(fps).is_integer() else fps)
        stream.width, stream.height = size
        stream.pix_fmt = _PIXEL_FORMATS.get(codec, "yuv420p")
        for grey in sweep(frames, size=size, planes=planes):
            frame = av.VideoFrame.from_ndarray(colour(grey) if rgb else np.stack([grey] * 3, axis=-1), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return buffer.getvalue()


def make_mp4(
    frames: int = 24, *, fps: float = 25, size=(320, 240), codec: str = "h264", rgb: bool = False, planes=TWO_PLANES
) -> bytes:
    """An MP4 clip (H.264 by default) of a sweep over real images."""
    return _video("mp4", frames, fps=fps, size=size, codec=codec, rgb=rgb, planes=planes)


def make_avi(
    frames: int = 24, *, fps: float = 25, size=(320, 240), codec: str = "mjpeg", rgb: bool = False, planes=TWO_PLANES
) -> bytes:
    """An AVI clip (Motion JPEG by default, as ultrasound machines export; "mpeg4" also works)."""
    return _video("avi", frames, fps=fps, size=size, codec=codec, rgb=rgb, planes=planes)


def make_mov(
    frames: int = 24, *, fps: float = 25, size=(320, 240), codec: str = "h264", rgb: bool = False, planes=TWO_PLANES
) -> bytes:
    """A QuickTime clip (ftyp brand "qt  ")."""
    return _video("mov", frames, fps=fps, size=size, codec=codec, rgb=rgb, planes=planes)


def make_multiframe_dicom(
    frames: int = 12,
    *,
    patient_id: str = "MRN-DICOM-1",
    photometric: str = "MONOCHROME2",
    transfer_syntax: str = ExplicitVRLittleEndian,
    frame_time_ms: float | None = 40.0,
    size: tuple[int, int] = (160, 120),
    planes: tuple[str, ...] = TWO_PLANES,
    **elements,
) -> bytes:
    """An Ultrasound Multi-frame Image Storage file of a sweep: MONOCHROME2 or RGB natively, MONOCHROME2 or
    YBR_FULL_422 as JPEG Baseline (one JPEG a frame). ``elements`` set or override header items as in
    tests.dicom_samples.dicom_bytes (for example a larger NumberOfFrames than the pixel data holds)."""
    rgb = photometric in ("RGB", "YBR_FULL", "YBR_FULL_422")
    pixels = [colour(grey) if rgb else grey for grey in sweep(frames, size=size, planes=planes)]
    if transfer_syntax == JPEGBaseline8Bit:
        pixel_data = encapsulate([_jpeg(frame) for frame in pixels])
    else:
        pixel_data = b"".join(frame.tobytes() for frame in pixels)
    header = {"FrameTime": f"{frame_time_ms:g}" if frame_time_ms is not None else None}
    return dicom_bytes(
        pixels[0],
        photometric=photometric,
        transfer_syntax=transfer_syntax,
        sop_class=UltrasoundMultiFrameImageStorage,
        patient_id=patient_id,
        frames=max(frames, 2),
        **{**header, "NumberOfFrames": frames, "PixelData": pixel_data, **elements},
    )


def _jpeg(frame: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=90, subsampling=1)  # 4:2:2 for YBR_FULL_422
    return buffer.getvalue()
