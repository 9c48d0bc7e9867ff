import numpy as np
import pytest

from classifier.ml.offsets import apply_offsets, balanced_cross_entropy, cross_fitted, fit_offsets


def skewed_predictions(seed: int = 0, n_per_class: int = 60, skew: float = 1.5):
    """Softmax outputs of a decent classifier whose class-1 logit is pushed down by ``skew``."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(4), n_per_class)
    logits = rng.normal(0, 1, (len(labels), 4))
    logits[np.arange(len(labels)), labels] += 2.5
    logits[:, 1] -= skew
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return probabilities, labels


def recall(probabilities, labels, cls):
    return float(np.mean(probabilities[labels == cls].argmax(1) == cls))


def test_zero_offsets_change_nothing():
    probabilities, _ = skewed_predictions()
    np.testing.assert_allclose(apply_offsets(probabilities, np.zeros(4)), probabilities, atol=1e-9)


def test_fitted_offsets_undo_a_skew_against_one_class():
    probabilities, labels = skewed_predictions()
    offsets = fit_offsets(probabilities, labels)
    adjusted = apply_offsets(probabilities, offsets)

    assert offsets.sum() == pytest.approx(0, abs=1e-9)
    assert offsets[1] == max(offsets) and offsets[1] - np.mean(np.delete(offsets, 1)) == pytest.approx(1.5, abs=0.5)
    assert recall(adjusted, labels, 1) > recall(probabilities, labels, 1) + 0.2
    assert balanced_cross_entropy(adjusted, labels, 4) < balanced_cross_entropy(probabilities, labels, 4)


def test_balanced_predictions_need_next_to_no_offset():
    probabilities, labels = skewed_predictions(skew=0.0)
    assert np.abs(fit_offsets(probabilities, labels)).max() < 0.3


def test_cross_fitting_never_uses_a_folds_own_rows():
    probabilities, labels = skewed_predictions()
    folds = np.arange(len(labels)) % 3
    _, fitted = cross_fitted(probabilities, labels, folds)

    changed = probabilities.copy()
    changed[folds == 0] = np.roll(changed[folds == 0], 1, axis=1)  # scramble fold 0 only
    adjusted, refitted = cross_fitted(changed, labels, folds)

    np.testing.assert_allclose(refitted[0], fitted[0])
    assert not np.allclose(refitted[1], fitted[1])
    np.testing.assert_allclose(adjusted[folds == 0], apply_offsets(changed[folds == 0], fitted[0]))


def test_refuses_a_single_class():
    probabilities, labels = skewed_predictions()
    with pytest.raises(ValueError, match="two classes"):
        fit_offsets(probabilities[labels == 0], labels[labels == 0])


def test_offsets_in_the_bias_shift_the_models_softmax():
    import keras

    from classifier.ml.model import add_logit_offsets

    keras.utils.set_random_seed(3)
    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax", name="predictions")(inputs))
    features = np.random.default_rng(1).normal(0, 1, (5, 6)).astype(np.float32)
    before = model.predict(features, verbose=0)
    offsets = np.array([0.5, -1.0, 0.25, 0.25])

    add_logit_offsets(model, offsets)

    np.testing.assert_allclose(model.predict(features, verbose=0), apply_offsets(before, offsets), atol=1e-5)
