"""Fold inference-mode BatchNormalization into the convolution before it, for faster prediction.

In inference a BatchNormalization after a convolution is a per-channel affine map,
``gamma * (z - mean) / sqrt(var + eps) + beta``, so it can be moved into the convolution's kernel and
bias. The folded model computes the same function up to float rounding with one fewer pass over every
feature map; a fused convolution + bias + ReLU6 is also what TensorFlow's CPU kernels run fastest.
The saved ``.keras`` file is not touched: folding happens in memory after a safe-mode load.
"""

from __future__ import annotations

import numpy as np

CONVOLUTIONS = ("Conv2D", "DepthwiseConv2D")


def _foldable_pairs(model) -> dict[str, str]:
    """{batch-norm layer name: convolution name} for each BatchNormalization whose only input is a
    bias-free convolution that feeds nothing else, normalising the last axis with scale and centre."""
    import keras

    pairs = {}
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization) or len(layer._inbound_nodes) != 1:
            continue
        if layer.axis not in (-1, [-1], [3], 3) or not (layer.scale and layer.center):
            continue
        parents = layer._inbound_nodes[0].parent_nodes
        if len(parents) != 1:
            continue
        conv = parents[0].operation
        if type(conv).__name__ in CONVOLUTIONS and not conv.use_bias and len(conv._outbound_nodes) == 1:
            pairs[layer.name] = conv.name
    return pairs


def fold_batchnorm(model):
    """A copy of ``model`` with every foldable BatchNormalization merged into its convolution (the
    BatchNormalization becomes an Identity of the same name, so layer names still resolve)."""
    import keras

    pairs = _foldable_pairs(model)
    if not pairs:
        return model
    convolutions = {conv: bn for bn, conv in pairs.items()}

    def clone(layer):
        config = layer.get_config()
        if layer.name in pairs:
            return keras.layers.Identity(name=layer.name)
        if layer.name in convolutions:
            config["use_bias"] = True
        return layer.__class__.from_config(config)

    def call(layer, *args, **kwargs):
        if layer.name in pairs:  # the Identity takes no mask or training flag
            return layer(*args)
        return layer(*args, **kwargs)

    folded = keras.models.clone_model(model, clone_function=clone, call_function=call)
    for layer in model.layers:
        if layer.name in pairs or not layer.weights:
            continue
        if layer.name not in convolutions:
            folded.get_layer(layer.name).set_weights(layer.get_weights())
            continue
        folded.get_layer(layer.name).set_weights(_folded_weights(layer, model.get_layer(convolutions[layer.name])))
    return folded


def _folded_weights(conv, bn) -> list[np.ndarray]:
    """Kernel and bias of ``conv`` with the inference-mode ``bn`` after it merged in (float64, then float32)."""
    gamma, beta, mean, variance = (np.asarray(w, dtype=np.float64) for w in bn.get_weights())
    scale = gamma / np.sqrt(variance + bn.epsilon)
    kernel = np.asarray(conv.get_weights()[0], dtype=np.float64)
    if type(conv).__name__ == "DepthwiseConv2D":
        # (kh, kw, channels, multiplier): output channel c * multiplier + m
        kernel = kernel * scale.reshape(kernel.shape[2], kernel.shape[3])
    else:
        kernel = kernel * scale  # (kh, kw, in, out): scale the output axis
    bias = beta - mean * scale
    return [kernel.astype(np.float32), bias.astype(np.float32)]
