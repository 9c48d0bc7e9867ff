"""Out-of-distribution inputs: blank and noise images, photographs.

The model learns to spread its probability over the four classes for inputs
that are none of them (outlier exposure). Training and evaluation draw from
disjoint sources: synthetic images use different seeds, and the natural
photographs bundled with scikit-image are split into a training half and a
held-out evaluation half by file name.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
from PIL import Image

from classifier.ml.preprocessing import preprocess, to_rgb

# Natural photographs shipped inside the scikit-image wheel (training-only dependency).
TRAIN_PHOTOS = (
    "astronaut.png",
    "brick.png",
    "cell.png",
    "chessboard_RGB.png",
    "color.png",
    "grass.png",
    "horse.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "logo.png",
    "page.png",
    "retina.jpg",
    "text.png",
)
VAL_PHOTOS = ("clock_motion.png", "phantom.png")
# Held out for the card's test figures. The two motorcycle images are a stereo pair, so both are here.
EVAL_PHOTOS = (
    "camera.png",
    "chelsea.png",
    "coffee.png",
    "coins.png",
    "gravel.png",
    "moon.png",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "rocket.jpg",
)
BLANK_NOISE_KINDS = (
    "black",
    "white",
    "grey",
    "colour",
    "uniform_noise",
    "gaussian_noise",
    "salt_pepper",
    "smooth_noise",
)


def blank_or_noise(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """One synthetic image of the given kind, float32 (size, size, 3) in 0..255."""
    shape = (size, size, 3)
    if kind == "black":
        image = np.full(shape, rng.uniform(0, 10))
    elif kind == "white":
        image = np.full(shape, rng.uniform(245, 255))
    elif kind == "grey":
        image = np.full(shape, rng.uniform(20, 235))
    elif kind == "colour":
        image = np.broadcast_to(rng.uniform(0, 255, 3), shape)
    elif kind == "uniform_noise":
        image = rng.uniform(0, 255, shape[:2] + (1,) if rng.random() < 0.5 else shape)
    elif kind == "gaussian_noise":
        image = rng.normal(rng.uniform(60, 190), rng.uniform(10, 70), shape[:2] + (1,))
    elif kind == "salt_pepper":
        image = (rng.random(shape[:2] + (1,)) < rng.uniform(0.05, 0.5)) * 255.0
    elif kind == "smooth_noise":
        cells = int(rng.integers(4, 24))
        low = rng.uniform(0, 255, (cells, cells, 1 if rng.random() < 0.5 else 3)).astype(np.uint8)
        image = np.asarray(
            Image.fromarray(low.squeeze(axis=2) if low.shape[2] == 1 else low).resize(
                (size, size), Image.Resampling.BICUBIC
            )
        )
        image = image.reshape(size, size, -1)
    else:
        raise ValueError(kind)
    return np.clip(np.broadcast_to(image, shape), 0, 255).astype(np.float32)


def blank_noise_batch(count: int, size: int, seed: int) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    kinds = [BLANK_NOISE_KINDS[i % len(BLANK_NOISE_KINDS)] for i in range(count)]
    return np.stack([blank_or_noise(kind, size, rng) for kind in kinds]), kinds


def synthetic_scene(size: int, rng: np.random.Generator) -> np.ndarray:
    """A colourful photograph-like image: a gradient with random rectangles and ellipses."""
    from PIL import ImageDraw

    top, bottom = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    ramp = np.linspace(0, 1, size)[:, None, None]
    base = (top * (1 - ramp) + bottom * ramp) * np.ones((1, size, 1))
    image = Image.fromarray(base.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 12))):
        x0, y0 = rng.integers(0, size, 2)
        x1, y1 = x0 + rng.integers(8, size // 2), y0 + rng.integers(8, size // 2)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((int(x0), int(y0), int(x1), int(y1)), fill=colour)
    return np.asarray(image, dtype=np.float32)


def photo_dir() -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data"


def photo_crops(
    names: tuple[str, ...], size: int, crops_per_photo: int, seed: int, *, grey_share: float = 0.0
) -> np.ndarray:
    """The whole photo (letterboxed like any upload) plus random crops of it, preprocessed.

    ``grey_share`` of the crops are turned grey, like a photograph of a screen
    or a scan, which looks more like ultrasound than a colour photo does.
    """
    rng = np.random.default_rng(seed)
    images = []
    for name in names:
        photo = to_rgb(Image.open(photo_dir() / name))
        images.append(preprocess(photo, size))
        for _ in range(crops_per_photo):
            side = int(min(photo.size) * rng.uniform(0.4, 1.0))
            left = int(rng.integers(0, photo.width - side + 1))
            top = int(rng.integers(0, photo.height - side + 1))
            crop = photo.crop((left, top, left + side, top + side))
            if rng.random() < grey_share:
                crop = crop.convert("L")
            images.append(preprocess(crop, size))
    return np.stack(images)


def training_outliers(size: int, seed: int, *, blank_noise: int = 96, scenes: int = 64, crops_per_photo: int = 8):
    """Synthetic and photographic outliers for training, float32 in 0..255."""
    rng = np.random.default_rng(seed)
    parts = [
        blank_noise_batch(blank_noise, size, seed)[0],
        np.stack([synthetic_scene(size, rng) for _ in range(scenes)]),
    ]
    with contextlib.suppress(ImportError):  # scikit-image absent: synthetic outliers only
        parts.append(photo_crops(TRAIN_PHOTOS, size, crops_per_photo, seed, grey_share=0.5))
    return np.concatenate(parts)
