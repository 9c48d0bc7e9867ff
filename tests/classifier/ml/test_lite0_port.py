"""The Keras port reproduces the official Lite0's ImageNet answers on natural images."""

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


@pytest.fixture(scope="module")
def imagenet_lite0(lite0_weights_path):
    from classifier.ml.efficientnet_lite import pretrained_lite0_imagenet

    return pretrained_lite0_imagenet(224, lite0_weights_path)


@pytest.fixture(scope="module")
def skimage_data_dir() -> Path:
    skimage = pytest.importorskip("skimage")
    return Path(skimage.__file__).parent / "data"


class TestLite0Port:
    @pytest.mark.parametrize("file_name", sorted(EXPECTED_TOP1))
    def test_predicts_the_expected_imagenet_class(self, imagenet_lite0, skimage_data_dir, file_name):
        batch = _center_crop(skimage_data_dir / file_name, 224)[np.newaxis]

        probabilities = np.asarray(imagenet_lite0(batch, training=False))[0]

        assert int(np.argmax(probabilities)) in EXPECTED_TOP1[file_name]

    def test_every_checkpoint_tensor_has_a_layer(self, lite0_weights_path):
        from classifier.ml.efficientnet_lite import build_lite0_imagenet, load_lite0_weights
        from classifier.ml.torch_weights import load_state_dict

        state = load_state_dict(lite0_weights_path)
        modules = {key.rpartition(".")[0] for key in state}

        assert load_lite0_weights(build_lite0_imagenet(224), state, include_top=True) == len(modules)
