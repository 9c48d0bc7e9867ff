"""Grad-CAM heatmaps and the overlay PNG stored with each prediction.

The target is the last layer whose output is 4-D (batch, height, width,
channels), found generically, so any Keras model with a convolutional trunk
works, the production Lite0 (its ``top_activation``) and tiny test models alike.
Gradients are taken of the log-probability of the predicted class, which does
not vanish when the softmax saturates.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from classifier.ml.preprocessing import letterbox_box, preprocess, to_rgb

OVERLAY_MAX_SIDE = 512
OVERLAY_ALPHA = 0.45


def find_target_layer(model):
    """The last layer with a 4-D output."""
    for layer in reversed(model.layers):
        shape = getattr(layer, "output", None)
        if shape is not None and len(layer.output.shape) == 4:
            return layer
    raise ValueError(f"{model.name} has no layer with a 4-D output to explain")


class GradCam:
    def __init__(self, model):
        import keras
        import tensorflow as tf

        self.target = find_target_layer(model)
        self._model = keras.Model(model.input, [self.target.output, model.outputs[0]])

        @tf.function(reduce_retracing=True)
        def _maps(batch, class_index):
            with tf.GradientTape() as tape:
                features, probabilities = self._model(batch, training=False)
                if class_index < 0:
                    chosen = tf.argmax(probabilities[0], output_type=tf.int32)
                else:
                    chosen = tf.cast(class_index, tf.int32)
                score = tf.math.log(probabilities[0, chosen] + 1e-12)
            gradients = tape.gradient(score, features)
            weights = tf.reduce_mean(gradients, axis=(1, 2))  # (1, channels)
            cam = tf.nn.relu(tf.reduce_sum(features * weights[:, None, None, :], axis=-1))[0]
            return cam, probabilities[0]

        self._maps = _maps

    def __call__(self, batch: np.ndarray, class_index: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Raw class-activation map (h, w) and the probabilities for one preprocessed image (1, S, S, 3)."""
        cam, probabilities = self._maps(batch.astype(np.float32), -1 if class_index is None else int(class_index))
        return np.asarray(cam, dtype=np.float32), np.asarray(probabilities)


def heatmap_for_image(cam: np.ndarray, image_size: tuple[int, int], input_size: int) -> np.ndarray:
    """Map a class-activation map of the letterboxed input back onto the image; 0..1, shape (height, width)."""
    width, height = image_size
    canvas = Image.fromarray(cam.astype(np.float32)).resize((input_size, input_size), Image.Resampling.BILINEAR)
    left, top, box_width, box_height = letterbox_box(width, height, input_size)
    region = canvas.crop((left, top, left + box_width, top + box_height)).resize(
        (width, height), Image.Resampling.BILINEAR
    )
    heat = np.asarray(region, dtype=np.float32)
    heat = heat - heat.min()
    peak = heat.max()
    return heat / peak if peak > 0 else heat


def _colormap(values: np.ndarray) -> np.ndarray:
    """A jet-like colour map: 0 blue, 0.5 green-yellow, 1 red; uint8 RGB."""
    red = np.clip(1.5 - np.abs(4 * values - 3), 0, 1)
    green = np.clip(1.5 - np.abs(4 * values - 2), 0, 1)
    blue = np.clip(1.5 - np.abs(4 * values - 1), 0, 1)
    return (np.stack([red, green, blue], axis=-1) * 255).astype(np.uint8)


def overlay_png(image: Image.Image, heat: np.ndarray, *, max_side: int = OVERLAY_MAX_SIDE) -> bytes:
    """Blend the heatmap over the image, at most ``max_side`` pixels on the long side, same aspect; PNG bytes."""
    base = to_rgb(image)
    scale = min(1.0, max_side / max(base.size))
    size = (max(1, round(base.width * scale)), max(1, round(base.height * scale)))
    base = base.resize(size, Image.Resampling.BILINEAR)
    heat_image = Image.fromarray(heat.astype(np.float32)).resize(size, Image.Resampling.BILINEAR)
    colours = Image.fromarray(_colormap(np.clip(np.asarray(heat_image), 0, 1)))
    blended = Image.blend(base, colours, OVERLAY_ALPHA)
    buffer = io.BytesIO()
    blended.save(buffer, format="PNG")
    return buffer.getvalue()


def heatmap(model_or_cam, image: Image.Image, input_size: int) -> np.ndarray:
    """Grad-CAM of the predicted class for one image, on the image's own grid (height, width), 0..1."""
    cam_fn = model_or_cam if isinstance(model_or_cam, GradCam) else GradCam(model_or_cam)
    image = to_rgb(image)
    cam, _ = cam_fn(preprocess(image, input_size)[np.newaxis])
    return heatmap_for_image(cam, image.size, input_size)
