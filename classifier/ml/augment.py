"""Augmentation suited to ultrasound, applied to 0..255 images before the model normalises them.

Small rotations, zoom and shifts (probe position), brightness and contrast
(gain settings), multiplicative speckle-like noise and horizontal flips. Keras
3's RandomContrast clips to 0..255, which is right here because these run
before normalisation.
"""

from __future__ import annotations

import numpy as np


def build_augmenter(seed: int):
    import keras

    return keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomRotation(0.04, fill_mode="constant", fill_value=0.0, seed=seed + 1),
            keras.layers.RandomZoom((-0.15, 0.15), fill_mode="constant", fill_value=0.0, seed=seed + 2),
            keras.layers.RandomTranslation(0.08, 0.08, fill_mode="constant", fill_value=0.0, seed=seed + 3),
            keras.layers.RandomBrightness(0.15, value_range=(0.0, 255.0), seed=seed + 4),
            keras.layers.RandomContrast(0.25, value_range=(0.0, 255.0), seed=seed + 5),
        ],
        name="augment",
    )


def speckle(images: np.ndarray, rng: np.random.Generator, *, max_sigma: float = 0.15) -> np.ndarray:
    """Multiplicative Gaussian noise with a per-image strength, clipped to 0..255."""
    sigma = rng.uniform(0.0, max_sigma, (len(images), 1, 1, 1)).astype(np.float32)
    noise = rng.standard_normal(images.shape[:3] + (1,), dtype=np.float32)
    return np.clip(images * (1.0 + sigma * noise), 0.0, 255.0)


class Augmenter:
    """Seeded augmentation of a float32 batch (N, S, S, 3) in 0..255; same seed, same sequence."""

    def __init__(self, seed: int):
        self.layers = build_augmenter(seed)
        self.rng = np.random.default_rng(seed)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        augmented = np.asarray(self.layers(images, training=True), dtype=np.float32)
        return speckle(augmented, self.rng)
