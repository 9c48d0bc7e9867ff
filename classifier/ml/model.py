"""The plane classifier: an EfficientNet-Lite backbone (Lite0 or Lite2) with a small softmax head.

The saved model takes float32 RGB in 0..255 (the output of
:func:`classifier.ml.preprocessing.preprocess`) and normalises inside, so the
``.keras`` file is self-contained. Only built-in layers are used, so it loads
with ``safe_mode=True``. From v2 on, a second output gives the similarity to
the nearest training image (see :func:`with_novelty_output`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from classifier.ml.efficientnet_lite import LITE_MEAN, LITE_STD, TOP_ACTIVATION, lite_features, load_lite_weights

HEAD_LAYERS = ("head_dropout", "predictions")
FEATURES = "avg_pool"
SIMILARITY = "nearest_similarity"


def build_classifier(
    *,
    num_classes: int,
    input_size: int,
    weights_path: str | Path | None = None,
    dropout: float = 0.3,
    drop_connect_rate: float = 0.1,
    backbone: str = "lite0",
):
    """The backbone (ImageNet weights when ``weights_path`` is given) plus a dropout + dense softmax head."""
    import keras

    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = keras.layers.Rescaling(1.0 / LITE_STD, offset=-LITE_MEAN / LITE_STD, name="normalise")(inputs)
    x = lite_features(x, backbone=backbone, drop_connect_rate=drop_connect_rate)
    x = keras.layers.GlobalAveragePooling2D(name=FEATURES)(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, outputs, name=f"fetal_planes_{backbone}")
    if weights_path is not None:
        from classifier.ml.torch_weights import load_state_dict

        load_lite_weights(model, load_state_dict(weights_path), include_top=False)
    return model


def feature_extractor(model):
    """The backbone up to global pooling (shares weights with ``model``)."""
    import keras

    return keras.Model(model.input, model.get_layer(FEATURES).output, name="features")


def with_novelty_output(model, bank_features: np.ndarray, *, features_layer: str = FEATURES):
    """``model`` plus a second output: the cosine similarity of an image's pooled features to the nearest
    of ``bank_features`` (the training images').

    A softmax can be confidently wrong on an input unlike anything it was trained on (a photograph, say);
    distance to the training images in feature space catches those (deep nearest neighbours, Sun et al.
    2022). Built from Keras' own layers, so the file still loads with ``safe_mode=True``.
    """
    import keras

    bank = bank_features / np.linalg.norm(bank_features, axis=1, keepdims=True)
    features = keras.layers.UnitNormalization(name="feature_norm")(model.get_layer(features_layer).output)
    bank_layer = keras.layers.Dense(len(bank), use_bias=False, trainable=False, name="training_bank")
    similarities = bank_layer(features)
    nearest = keras.layers.GlobalMaxPooling1D(name=SIMILARITY)(
        keras.layers.Reshape((len(bank), 1), name="similarities")(similarities)
    )
    bank_layer.set_weights([bank.T.astype(np.float32)])
    return keras.Model(model.inputs, [model.outputs[0], nearest], name=model.name)


def add_logit_offsets(model, offsets) -> None:
    """Add ``offsets`` to the classifier layer's bias: its softmax becomes softmax(z + offsets)
    (see :mod:`classifier.ml.offsets`). The file keeps its layers, so nothing else changes."""
    layer = model.get_layer("predictions")
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel, (bias + np.asarray(offsets, dtype=np.float32)).astype(bias.dtype)])


def set_backbone_trainable(model, trainable_from_block: int | None) -> None:
    """Freeze the backbone, or unfreeze blocks from ``trainable_from_block`` on plus the head conv.

    BatchNormalization stays frozen (inference mode) throughout: with a few
    hundred images its running statistics are better left at ImageNet's.
    """
    import keras

    unfrozen = False
    for layer in model.layers:
        if layer.name.startswith(f"blocks_{trainable_from_block}_") and trainable_from_block is not None:
            unfrozen = True
        if layer.name in HEAD_LAYERS:
            layer.trainable = True
        elif isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
        else:
            layer.trainable = unfrozen


__all__ = [
    "TOP_ACTIVATION",
    "add_logit_offsets",
    "build_classifier",
    "with_novelty_output",
    "feature_extractor",
    "set_backbone_trainable",
]
