"""Folding BatchNormalization into the convolutions changes the speed, not the predictions."""

import numpy as np
import pytest

from classifier.ml.efficientnet_lite import TOP_ACTIVATION
from classifier.ml.fold import fold_batchnorm
from classifier.ml.model import build_classifier, with_novelty_output

keras = pytest.importorskip("keras")


def randomise_batchnorm(model, seed: int = 0) -> None:
    """Statistics far from the identity, so a wrong fold shows."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.get_weights()[0].shape[0]
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, n).astype(np.float32),
                    rng.normal(0, 0.2, n).astype(np.float32),
                    rng.normal(0, 0.2, n).astype(np.float32),
                    rng.uniform(0.5, 2.0, n).astype(np.float32),
                ]
            )


def batchnorms(model) -> int:
    return sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)


@pytest.fixture(scope="module")
def lite_classifier():
    keras.utils.set_random_seed(0)
    model = build_classifier(num_classes=4, input_size=64)
    randomise_batchnorm(model)
    bank = np.random.default_rng(1).normal(size=(10, 1280)).astype(np.float32)
    return with_novelty_output(model, bank)


class TestFoldBatchnorm:
    def test_the_lite_classifier_keeps_its_outputs_without_any_batchnorm(self, lite_classifier):
        images = np.random.default_rng(2).uniform(0, 255, (4, 64, 64, 3)).astype(np.float32)
        folded = fold_batchnorm(lite_classifier)
        before = lite_classifier(images, training=False)
        after = folded(images, training=False)
        assert batchnorms(lite_classifier) > 0 and batchnorms(folded) == 0
        np.testing.assert_allclose(np.asarray(after[0]), np.asarray(before[0]), atol=1e-5)
        np.testing.assert_allclose(np.asarray(after[1]), np.asarray(before[1]), atol=1e-5)
        assert folded.get_layer(TOP_ACTIVATION).output.shape == lite_classifier.get_layer(TOP_ACTIVATION).output.shape

    def test_leaves_the_original_model_untouched(self, lite_classifier):
        weights = [w.copy() for w in lite_classifier.get_layer("conv_stem").get_weights()]
        fold_batchnorm(lite_classifier)
        assert not lite_classifier.get_layer("conv_stem").use_bias
        np.testing.assert_array_equal(lite_classifier.get_layer("conv_stem").get_weights()[0], weights[0])

    def test_folds_a_depthwise_convolution_with_a_channel_multiplier(self):
        inputs = keras.Input((12, 12, 3))
        x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, use_bias=False, padding="same", name="dw")(inputs)
        x = keras.layers.BatchNormalization(epsilon=1e-3, name="bn")(x)
        model = keras.Model(inputs, keras.layers.ReLU(6.0)(x))
        randomise_batchnorm(model, seed=3)
        images = np.random.default_rng(4).normal(size=(2, 12, 12, 3)).astype(np.float32)
        folded = fold_batchnorm(model)
        assert batchnorms(folded) == 0
        np.testing.assert_allclose(folded(images), model(images, training=False), atol=1e-5)

    def test_keeps_a_batchnorm_it_cannot_fold(self):
        inputs = keras.Input((8, 8, 3))
        conv = keras.layers.Conv2D(4, 1, use_bias=False, name="shared_conv")(inputs)
        normalised = keras.layers.BatchNormalization(name="bn_after_shared")(conv)
        added = keras.layers.Add()([normalised, conv])  # the convolution feeds two layers
        pooled = keras.layers.GlobalAveragePooling2D()(added)
        outputs = keras.layers.BatchNormalization(name="bn_after_pool")(pooled)  # no convolution before it
        model = keras.Model(inputs, outputs)
        randomise_batchnorm(model, seed=5)
        assert fold_batchnorm(model) is model

    def test_folds_what_it_can_and_keeps_the_rest(self):
        inputs = keras.Input((8, 8, 3))
        x = keras.layers.Conv2D(4, 3, use_bias=False, name="conv")(inputs)
        x = keras.layers.BatchNormalization(name="bn_folded")(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        x = keras.layers.BatchNormalization(name="bn_kept")(x)
        model = keras.Model(inputs, x)
        randomise_batchnorm(model, seed=6)
        images = np.random.default_rng(7).normal(size=(3, 8, 8, 3)).astype(np.float32)
        folded = fold_batchnorm(model)
        assert isinstance(folded.get_layer("bn_kept"), keras.layers.BatchNormalization)
        assert not isinstance(folded.get_layer("bn_folded"), keras.layers.BatchNormalization)
        np.testing.assert_allclose(folded(images), model(images, training=False), atol=1e-5)
