"""The one preprocessing path shared by training, evaluation and the worker."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps


def load_image(data: bytes) -> Image.Image:
    """Decode image bytes into an RGB image, honouring EXIF orientation."""
    image = Image.open(io.BytesIO(data))
    image.load()
    image = ImageOps.exif_transpose(image)
    return to_rgb(image)


def to_8bit(image: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit pixels: grey stays grey ("L"), everything else becomes RGB.

    High bit-depth grey is scaled by its own range instead of clipped; alpha is composited on
    black, the ultrasound background.
    """
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        scale = 255.0 / (high - low) if high > low else 0.0
        return Image.fromarray(((array - low) * scale).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba).convert("RGB")
    if image.mode in ("1", "L"):
        return image.convert("L")
    return image.convert("RGB")  # CMYK, YCbCr, P, RGB


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
