"""The Keras port reproduces the official Lite0's and Lite2's ImageNet answers on natural images."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# ImageNet class indices: 281 tabby, 282 tiger cat, 285 Egyptian cat; 967 espresso, 968 cup;
# 665 moped, 670 motor scooter.
EXPECTED_TOP1 = {
    "chelsea.png": {281, 282, 285},
    "coffee.png": {967, 968},
    "motorcycle_left.png": {665, 670},
}


def _center_crop(path: Path, size: int) -> np.ndarray:
    image = Image.open(path).convert("RGB")
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    image = image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.float32)


# Each checkpoint at the input size it was trained for.
NATIVE_SIZE = {"lite0": 224, "lite2": 260}


@pytest.fixture(scope="module", params=sorted(NATIVE_SIZE))
def backbone(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def backbone_weights_path(backbone, request) -> Path:
    return request.getfixturevalue(f"{backbone}_weights_path")


@pytest.fixture(scope="module")
def imagenet_model(backbone, backbone_weights_path):
    from classifier.ml.efficientnet_lite import pretrained_lite_imagenet

    return pretrained_lite_imagenet(NATIVE_SIZE[backbone], backbone_weights_path, backbone)


@pytest.fixture(scope="module")
def skimage_data_dir() -> Path:
    skimage = pytest.importorskip("skimage")
    return Path(skimage.__file__).parent / "data"


class TestLitePort:
    @pytest.mark.parametrize("file_name", sorted(EXPECTED_TOP1))
    def test_predicts_the_expected_imagenet_class(self, imagenet_model, backbone, skimage_data_dir, file_name):
        batch = _center_crop(skimage_data_dir / file_name, NATIVE_SIZE[backbone])[np.newaxis]

        probabilities = np.asarray(imagenet_model(batch, training=False))[0]

        assert int(np.argmax(probabilities)) in EXPECTED_TOP1[file_name]

    def test_every_checkpoint_tensor_has_a_layer(self, backbone, backbone_weights_path):
        from classifier.ml.efficientnet_lite import build_lite_imagenet, load_lite_weights
        from classifier.ml.torch_weights import load_state_dict

        state = load_state_dict(backbone_weights_path)
        modules = {key.rpartition(".")[0] for key in state}

        assert load_lite_weights(build_lite_imagenet(224, backbone), state, include_top=True) == len(modules)

    def test_one_checkpoint_does_not_load_into_the_other_layout(self, lite0_weights_path):
        from classifier.ml.efficientnet_lite import build_lite_imagenet, load_lite_weights
        from classifier.ml.torch_weights import load_state_dict

        with pytest.raises(ValueError, match="shapes"):
            load_lite_weights(build_lite_imagenet(224, "lite2"), load_state_dict(lite0_weights_path), include_top=True)

    def test_an_unknown_backbone_is_refused_by_name(self):
        from classifier.ml.efficientnet_lite import build_lite_imagenet

        with pytest.raises(ValueError, match="unknown backbone 'lite9'"):
            build_lite_imagenet(224, "lite9")
