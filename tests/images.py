"""Image bytes made in memory for tests."""

import io

import numpy as np
from PIL import Image


def png_bytes(width: int = 64, height: int = 48, *, seed: int = 0, mode: str = "L") -> bytes:
    rng = np.random.default_rng(seed)
    array = rng.integers(0, 255, size=(height, width), dtype=np.uint8)
    image = Image.fromarray(array)
    if mode != "L":
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def image_bytes(fmt: str, *, width: int = 40, height: int = 30, mode: str = "RGB", seed: int = 1) -> bytes:
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8))
    if mode != "RGB":
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def photo_bytes(width: int = 320, height: int = 240, *, seed: int = 0, fmt: str = "JPEG") -> bytes:
    """A colourful photograph-like picture (sky, foliage, a bright bird-like shape), nothing like an ultrasound:
    what a mistaken upload from a phone's camera roll looks like to the classifier."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    sky = np.stack([90 + 60 * y / height, 150 + 50 * y / height, 235 - 40 * y / height], axis=-1)
    foliage = np.stack([40 + 30 * np.sin(x / 17), 120 + 50 * np.sin(y / 11 + x / 23), 50 + 20 * np.cos(x / 9)], -1)
    ground = (y > height * (0.55 + 0.08 * np.sin(x / 31)))[..., None]
    picture = np.where(ground, foliage, sky)
    for colour in ([230, 30, 35], [250, 200, 30], [30, 160, 70], [30, 90, 220]):  # a parrot's feathers
        cx, cy = rng.uniform(0.3, 0.7) * width, rng.uniform(0.25, 0.6) * height
        rx, ry = rng.uniform(0.06, 0.16) * width, rng.uniform(0.08, 0.2) * height
        inside = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 < 1
        picture[inside] = colour
    picture += rng.normal(0, 8, size=picture.shape)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(picture, 0, 255).astype(np.uint8)).save(buffer, format=fmt, quality=90)
    return buffer.getvalue()
