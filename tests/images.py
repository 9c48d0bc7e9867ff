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
