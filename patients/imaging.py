"""Decide whether uploaded bytes are an image we accept, by content alone."""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata
import warnings
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from PIL import Image, ImageMode, UnidentifiedImageError

from classifier.ml.preprocessing import draft_for, to_bounded_8bit

ACCEPTED_FORMATS = {"PNG": "png", "JPEG": "jpg", "BMP": "bmp", "TIFF": "tif"}
# Media type of a stored file, by its server-chosen extension (an original, or the display rendition's "png").
MEDIA_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "bmp": "image/bmp",
    "tif": "image/tiff",
    "dcm": "application/dicom",  # a DICOM Part 10 file (patients.dicom_files)
    # Cine loops (patients.cine_files): the original video as uploaded, and the playback rendition's "mp4".
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "avi": "video/x-msvideo",
}
DISPLAY_MEDIA_TYPE = MEDIA_TYPES["png"]
# The stored copy's long side: twice an ultrasound frame's, so a clinic's images keep every pixel,
# while a huge one is stored (and later read by the worker) as an integer box-filtered reduction.
DERIVED_MAX_SIDE = 4096
# zlib level of the display PNG. The default (6) spent ~3x longer encoding than decoding and checking the upload
# together (bench/bench_upload.py); level 1 is lossless all the same (the worker and the browser get the same
# pixels) and about 15% larger on the fetal-planes images.
DISPLAY_PNG_COMPRESS_LEVEL = 1
# A study page card shows an image at most 18rem wide: 640 px stays sharp at twice that on a high-density screen.
THUMBNAIL_MAX_SIDE = 640


@dataclass(frozen=True)
class ImageFacts:
    """The uploaded file (kept unchanged as the original) and its display rendition.

    ``format``, ``extension``, ``byte_size``, ``sha256``, ``original_width`` and ``original_height``
    describe the uploaded bytes (the size as the file's header gives it, before any EXIF orientation);
    ``width``, ``height`` and ``derived_png`` are the display rendition's.
    """

    format: str
    extension: str
    width: int
    height: int
    byte_size: int
    sha256: str
    # The display rendition: the pixels upright, 8-bit, re-encoded as PNG without any metadata.
    derived_png: bytes
    original_width: int
    original_height: int


def media_type_of(stored_name: str) -> str:
    """The media type of a stored file, from the extension the server gave its name."""
    return MEDIA_TYPES[stored_name.rsplit(".", 1)[-1].lower()]


def _reject(message: str, code: str) -> ValidationError:
    return ValidationError({"file": ValidationError(message, code=code)})


def inspect_image_bytes(data: bytes) -> ImageFacts:
    """Return the facts of an acceptable image or raise ValidationError on field ``file``."""
    if not data:
        raise _reject("The file is empty.", "empty")
    if len(data) > settings.UPLOAD_MAX_BYTES:
        limit_mb = settings.UPLOAD_MAX_BYTES / (1024 * 1024)
        raise _reject(f"The file is larger than the {limit_mb:.0f} MB limit.", "too_large")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image_format = image.format
                width, height = image.size
                if image_format not in ACCEPTED_FORMATS:
                    raise _reject(
                        f"Unsupported image type {image_format}; use PNG, JPEG, BMP or TIFF.", "unsupported_type"
                    )
                # Check the header's dimensions before decoding a single pixel.
                if width * height > settings.UPLOAD_MAX_PIXELS:
                    raise _reject(
                        f"The image is {width}x{height} pixels, more than this server accepts.", "too_many_pixels"
                    )
                if getattr(image, "n_frames", 1) > 1:
                    raise _reject("The file holds several frames; upload one image per file.", "multi_frame")
                draft_for(image, max_side=DERIVED_MAX_SIDE)
                _check_decoded_size(image)
                derived = _derived_copy(image)
    except ValidationError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _reject("The image has too many pixels.", "too_many_pixels") from None
    except UnidentifiedImageError:
        raise _reject("The file is not an image this server can read.", "not_an_image") from None
    except Exception as error:  # Pillow's format plugins raise many types on malformed input (fuzz-tested)
        raise _reject(
            f"The image is damaged or truncated and cannot be decoded ({error.__class__.__name__}).", "corrupt"
        ) from None
    return ImageFacts(
        format=image_format,
        extension=ACCEPTED_FORMATS[image_format],
        width=derived.width,
        height=derived.height,
        byte_size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        derived_png=display_png(derived),
        original_width=width,
        original_height=height,
    )


def display_png(image: Image.Image) -> bytes:
    """The display rendition's bytes: ``image`` encoded once, as the PNG that is stored and served unchanged."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=DISPLAY_PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def thumbnail_png(display: bytes) -> bytes:
    """A card's thumbnail of a display rendition (ours: checked, 8-bit, upright), at most THUMBNAIL_MAX_SIDE px."""
    with Image.open(io.BytesIO(display)) as image:
        image.thumbnail((THUMBNAIL_MAX_SIDE, THUMBNAIL_MAX_SIDE), Image.Resampling.LANCZOS, reducing_gap=2.0)
        return display_png(image)


def decoded_bytes(image: Image.Image) -> int:
    """Memory Pillow allocates to decode ``image``: width x height x bytes per sample x channels.

    Read from the header (after any JPEG draft), before a pixel is decoded. Pillow keeps 8-bit
    images of two to four channels in four bytes a pixel, so they count as four.
    """
    mode = ImageMode.getmode(image.mode)
    bytes_per_sample, channels = int(mode.typestr[2:]), len(mode.bands)
    bytes_per_pixel = 4 if bytes_per_sample == 1 and channels > 1 else bytes_per_sample * channels
    return image.width * image.height * bytes_per_pixel


def _check_decoded_size(image: Image.Image) -> None:
    needed, limit = decoded_bytes(image), settings.UPLOAD_MAX_DECODED_BYTES
    if needed > limit:
        mb = 1024 * 1024
        raise _reject(
            f"The image needs {needed / mb:.0f} MB of memory once decoded, more than the "
            f"{limit / mb:.0f} MB limit (UPLOAD_MAX_DECODED_BYTES); send a smaller or 8-bit image.",
            "decoded_too_large",
        )


def _derived_copy(image: Image.Image) -> Image.Image:
    """8-bit grey or RGB pixels, upright, at most DERIVED_MAX_SIDE px on the long side, with no EXIF,
    text chunks, ICC or trailing bytes.

    Re-encoding also means a polyglot's hidden payload never reaches the rendition (the original, kept
    unchanged, is served only as a sandboxed attachment).
    """
    derived = to_bounded_8bit(image, max_side=DERIVED_MAX_SIDE)
    derived.info = {}  # else the PNG encoder re-embeds an ICC profile (free text, any size) kept here
    return derived


def sanitize_filename(name: str | bytes | None, *, max_length: int = 120) -> str:
    """A display-only name: no directories, control characters or odd bytes."""
    if isinstance(name, bytes):
        name = name.decode("utf-8", errors="replace")
    name = unicodedata.normalize("NFC", name or "")
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C" and ch != "\ufffd")
    name = name.strip().lstrip(".")
    if len(name) > max_length:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: max_length - len(ext) - 1] + dot + ext) if dot and len(ext) <= 10 else name[:max_length]
    return name
