"""Choosing between the weight average of the fine-tuned members ("soup") and the best member, on val loss."""

import numpy as np
import pytest

from classifier.ml.evaluate import predict
from classifier.ml.finetune import MemberResult, average_weights, choose_soup, cross_entropy


@pytest.fixture
def linear_model():
    import keras

    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(4, activation="softmax")(inputs)
    return keras.Model(inputs, outputs)


@pytest.fixture
def val_set():
    rng = np.random.default_rng(0)
    y = np.arange(40) % 4
    x = np.eye(4, dtype=np.float32)[y] + rng.normal(0, 0.1, (40, 4)).astype(np.float32)
    return x, y


GOOD = [np.eye(4, dtype=np.float32) * 6, np.zeros(4, dtype=np.float32)]


def _member(seed, weights, model, x, y):
    model.set_weights(weights)
    loss = cross_entropy(np.eye(4)[y], predict(model, x))
    return MemberResult(seed=seed, weights=[w.copy() for w in weights], val_loss=loss, kind="best_epoch")


def test_average_weights_averages_each_tensor():
    averaged = average_weights([[np.ones(2), np.zeros(3)], [np.full(2, 3.0), np.full(3, 2.0)]])
    np.testing.assert_array_equal(averaged[0], [2.0, 2.0])
    np.testing.assert_array_equal(averaged[1], [1.0, 1.0, 1.0])


def test_keeps_the_soup_when_it_beats_every_member(linear_model, val_set):
    x, y = val_set
    noise = np.random.default_rng(1).normal(0, 4, (4, 4)).astype(np.float32)
    members = [
        _member(1, [GOOD[0] + noise, GOOD[1]], linear_model, x, y),
        _member(2, [GOOD[0] - noise, GOOD[1]], linear_model, x, y),
    ]

    selection = choose_soup(linear_model, members, x_val=x, y_val=y, predict=predict, log=lambda _: None)

    assert selection["kind"] == "uniform_soup"
    assert selection["val_loss"] < min(m.val_loss for m in members)
    np.testing.assert_allclose(linear_model.get_weights()[0], GOOD[0], atol=1e-6)


def test_keeps_the_best_member_when_the_soup_is_worse(linear_model, val_set):
    x, y = val_set
    members = [
        _member(1, GOOD, linear_model, x, y),
        _member(2, [-GOOD[0], GOOD[1]], linear_model, x, y),
    ]

    selection = choose_soup(linear_model, members, x_val=x, y_val=y, predict=predict, log=lambda _: None)

    assert selection["kind"] == "best_member" and selection["seed"] == 1
    assert selection["soup_val_loss"] > selection["val_loss"]
    np.testing.assert_allclose(linear_model.get_weights()[0], GOOD[0])
