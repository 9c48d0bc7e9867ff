"""The one preprocessing path shared by training, evaluation and the worker."""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import ExifTags, Image

# The model sees 224 px and the Grad-CAM overlay at most 512 px, so nothing downstream needs more;
# every training image (at most 1495 px) is below it, so training pixels are unchanged by the cap.
LOAD_MAX_SIDE = 2048
# High bit-depth grey is scaled this many rows at a time, so no float copy of a whole image exists.
_STRIP_ROWS = 256
# Modes where a box average of the raw samples is the same as of the converted ones (8-bit samples).
_REDUCE_FIRST_MODES = frozenset({"L", "RGB", "RGBA", "LA"})
_HIGH_BIT_DEPTH_MODES = frozenset({"I;16", "I;16B", "I;16L", "I", "F"})
_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def load_image(data: bytes, *, max_side: int = LOAD_MAX_SIDE) -> Image.Image:
    """Decode image bytes into an upright 8-bit RGB image, at most ``max_side`` px on its long side."""
    image = Image.open(io.BytesIO(data))
    draft_for(image, max_side=max_side)
    return to_rgb(to_bounded_8bit(image, max_side=max_side))


def draft_for(image: Image.Image, *, max_side: int) -> None:
    """Before decoding: let a large JPEG decode at 1/2, 1/4 or 1/8 scale, never below ``max_side``."""
    longest = max(image.size)
    if image.format == "JPEG" and longest > max_side:
        scale = max_side / longest
        image.draft(None, (max(1, math.ceil(image.width * scale)), max(1, math.ceil(image.height * scale))))


def to_bounded_8bit(image: Image.Image, *, max_side: int) -> Image.Image:
    """Decode ``image`` into upright 8-bit grey or RGB, at most ``max_side`` px on its long side.

    Shrinking by an integer box filter (``reduce``) happens before any full-size mode conversion
    where the mode allows it, and EXIF orientation is applied last, to the small image, so the
    peak memory is the decoded pixels plus a fraction, not several full-size copies.
    """
    image.load()
    orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    if image.mode in _REDUCE_FIRST_MODES:
        image = to_8bit(_shrink(image, max_side=max_side))
    else:
        image = _shrink(to_8bit(image), max_side=max_side)
    method = _ORIENTATION_TRANSPOSE.get(orientation)
    return image.transpose(method) if method is not None else image


def _shrink(image: Image.Image, *, max_side: int) -> Image.Image:
    factor = math.ceil(max(image.size) / max_side)
    return image.reduce(factor) if factor > 1 else image


def to_8bit(image: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit pixels: grey stays grey ("L"), everything else becomes RGB.

    High bit-depth grey is scaled by its own range instead of clipped; alpha is composited on
    black, the ultrasound background.
    """
    if image.mode in _HIGH_BIT_DEPTH_MODES:
        return _scaled_to_8bit(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba).convert("RGB")
    if image.mode in ("1", "L"):
        return image.convert("L")
    return image.convert("RGB")  # CMYK, YCbCr, P, RGB


def _scaled_to_8bit(image: Image.Image) -> Image.Image:
    """High bit-depth grey scaled by its range into "L", one strip of rows at a time."""
    tops = range(0, image.height, _STRIP_ROWS)
    low, high = math.inf, -math.inf
    for top in tops:
        strip = _rows(image, top)
        low, high = min(low, float(strip.min())), max(high, float(strip.max()))
    scale = 255.0 / (high - low) if high > low else 0.0
    scaled = np.empty((image.height, image.width), dtype=np.uint8)
    for top in tops:
        scaled[top : top + _STRIP_ROWS] = ((_rows(image, top).astype(np.float64) - low) * scale).astype(np.uint8)
    return Image.fromarray(scaled)


def _rows(image: Image.Image, top: int) -> np.ndarray:
    return np.asarray(image.crop((0, top, image.width, min(top + _STRIP_ROWS, image.height))))


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode (16-bit, CMYK, palette, alpha) to 8-bit RGB."""
    return to_8bit(image).convert("RGB")


def letterbox_box(width: int, height: int, input_size: int) -> tuple[int, int, int, int]:
    """Where an image of ``width`` x ``height`` lands on the square canvas: (left, top, width, height)."""
    scale = input_size / max(width, height)
    new_width = max(1, round(width * scale))
    new_height = max(1, round(height * scale))
    return (input_size - new_width) // 2, (input_size - new_height) // 2, new_width, new_height


def preprocess(image: Image.Image, input_size: int) -> np.ndarray:
    """Letterbox to a square of ``input_size`` and return float32 HxWx3 in 0..255.

    Padding (black, like the ultrasound background) keeps the anatomy's aspect
    ratio; normalisation is a layer inside the saved model.
    """
    image = to_rgb(image)
    left, top, width, height = letterbox_box(image.width, image.height, input_size)
    resized = image.resize((width, height), Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", (input_size, input_size), (0, 0, 0))
    canvas.paste(resized, (left, top))
    return np.asarray(canvas, dtype=np.float32)
