"""Shared fixtures: clinics and users by role, API clients, a temporary MEDIA_ROOT,
a tiny real Keras model registered as the active version, and a real Celery worker."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from classifier.labels import PLANE_LABELS
from fetalsite.accounts.roles import Role
from tests.factories import ClinicFactory, StudyFactory, UserFactory

TINY_INPUT_SIZE = 32


DATABASE_FIXTURES = {
    "db",
    "transactional_db",
    "live_server",
    "django_db_reset_sequences",
    "django_db_serialized_rollback",
}


def pytest_collection_modifyitems(config, items):
    """With FETAL_TESTS_DATABASE_ONLY=1 (CI's second pass, on SQLite: .ci/run), only the tests that use the
    database run: one that uses none cannot tell two database engines apart, and it ran in the first pass."""
    if os.environ.get("FETAL_TESTS_DATABASE_ONLY") != "1":
        return
    selected, deselected = [], []
    for item in items:
        uses_database = item.get_closest_marker("django_db") or DATABASE_FIXTURES & set(item.fixturenames)
        (selected if uses_database else deselected).append(item)
    config.hook.pytest_deselected(items=deselected)
    items[:] = selected


@pytest.fixture(autouse=True)
def _fresh_caches():
    """Throttle counters live in a cache keyed by user id; on SQLite ids repeat between tests."""
    from django.core.cache import caches

    for cache in caches.all():
        cache.clear()


@pytest.fixture(scope="session", autouse=True)
def _flush_postgresql_by_delete():
    """A transactional test (a live server, a Celery worker) ends with a flush of every table. PostgreSQL's
    TRUNCATE of the ~45 tables takes about a second even when they are empty (new files for every table and
    index); DELETE of the few rows a test leaves takes milliseconds and leaves the same empty tables, sequences
    untouched as TRUNCATE without RESTART IDENTITY leaves them. Tables with a trigger of their own (the access
    log's append-only trigger refuses DELETE) are still truncated, as is everything when a flush resets
    sequences or cascades."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    truncate = DatabaseOperations.sql_flush

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        if reset_sequences or allow_cascade or not tables:
            return truncate(self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT DISTINCT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
                " WHERE NOT t.tgisinternal"
            )
            guarded = {name for (name,) in cursor.fetchall()}
        # Django's foreign keys are DEFERRABLE INITIALLY DEFERRED: the order of the deletes does not matter.
        return [
            "SET CONSTRAINTS ALL DEFERRED;",
            *truncate(self, style, [table for table in tables if table in guarded]),
            *(f"DELETE FROM {self.quote_name(table)};" for table in tables if table not in guarded),  # noqa: S608
        ]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DatabaseOperations, "sql_flush", sql_flush)
        yield


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return Path(settings.MEDIA_ROOT)


@pytest.fixture
def north(db):
    return ClinicFactory(name="North Clinic")


@pytest.fixture
def south(db):
    return ClinicFactory(name="South Clinic")


@pytest.fixture
def sonographer(north):
    return UserFactory(username="sono_north", clinic=north, role=Role.SONOGRAPHER)


@pytest.fixture
def clinician(north):
    return UserFactory(username="clin_north", clinic=north, role=Role.CLINICIAN)


@pytest.fixture
def integrator(north):
    return UserFactory(username="api_north", clinic=north, role=Role.INTEGRATOR)


@pytest.fixture
def south_sonographer(south):
    return UserFactory(username="sono_south", clinic=south, role=Role.SONOGRAPHER)


@pytest.fixture
def study(sonographer):
    return StudyFactory(patient__clinic=sonographer.clinic, created_by=sonographer)


def _token_client(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def api_client(integrator):
    return _token_client(integrator)


@pytest.fixture
def south_api_client(south_sonographer):
    return _token_client(south_sonographer)


def tiny_card(model_path: Path, *, name: str, **thresholds: float) -> dict:
    """A model card, shaped like classifier/ml/card.py writes it, for an untrained test model."""
    return {
        "name": name,
        "version": "1",
        "file": model_path.name,
        "sha256": hashlib.sha256(model_path.read_bytes()).hexdigest(),
        "classes": PLANE_LABELS,
        "input_size": TINY_INPUT_SIZE,
        **thresholds,
        "metrics": {"note": "untrained test model"},
    }


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny real Keras model with a card, saved once per test session."""
    import keras

    directory = tmp_path_factory.mktemp("models")
    keras.utils.set_random_seed(7)
    inputs = keras.Input((TINY_INPUT_SIZE, TINY_INPUT_SIZE, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="last_conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(len(PLANE_LABELS), activation="softmax")(x)
    model_path = directory / "tiny-v1.keras"
    keras.Model(inputs, outputs).save(model_path)
    card = tiny_card(model_path, name="tiny", needs_review_threshold=0.5)
    (directory / "tiny-v1.card.json").write_text(json.dumps(card))
    return directory


@pytest.fixture(scope="session")
def tiny_novelty_model_file(tmp_path_factory) -> Path:
    """A tiny real Keras model with the novelty output (similarity to a bank of three feature vectors)."""
    import keras
    import numpy as np

    from classifier.ml.model import with_novelty_output

    keras.utils.set_random_seed(8)
    inputs = keras.Input((TINY_INPUT_SIZE, TINY_INPUT_SIZE, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(8, 3, name="last_conv")(x)
    features = keras.layers.GlobalAveragePooling2D(name="pooled")(x)
    outputs = keras.layers.Dense(len(PLANE_LABELS), activation="softmax")(features)
    bank = np.random.default_rng(8).normal(size=(3, 8)).astype(np.float32)
    model = with_novelty_output(keras.Model(inputs, outputs), bank, features_layer="pooled")
    path = tmp_path_factory.mktemp("novelty") / "tiny-novelty-v1.keras"
    model.save(path)
    return path


@pytest.fixture
def register_tiny_novelty_model(db, settings, tmp_path, tiny_novelty_model_file):
    """Register and activate the novelty model with the given thresholds (a fresh MODELS_DIR per test)."""
    from classifier.services import model_version_register

    def register(*, review_threshold: float, novelty_threshold: float):
        directory = tmp_path / "novelty-models"
        directory.mkdir(exist_ok=True)
        (directory / tiny_novelty_model_file.name).write_bytes(tiny_novelty_model_file.read_bytes())
        card = tiny_card(
            tiny_novelty_model_file,
            name="tiny-novelty",
            needs_review_threshold=review_threshold,
            novelty_threshold=novelty_threshold,
        )
        (directory / "tiny-novelty-v1.card.json").write_text(json.dumps(card))
        settings.MODELS_DIR = directory
        return model_version_register(card_path=directory / "tiny-novelty-v1.card.json", activate=True)

    return register


@pytest.fixture
def active_model(db, settings, tiny_model_dir):
    from classifier.services import model_version_register

    settings.MODELS_DIR = tiny_model_dir
    return model_version_register(card_path=tiny_model_dir / "tiny-v1.card.json", activate=True)


@pytest.fixture
def real_model(db, settings):
    """The trained model the product ships (models/fetal-planes-v3), active: it tells the planes of real images apart,
    so a clip swept over real images has the per-plane runs and key frames a person would see."""
    from classifier.services import model_version_register

    settings.MODELS_DIR = Path(settings.BASE_DIR) / "models"
    return model_version_register(card_path=settings.MODELS_DIR / "fetal-planes-v3.card.json", activate=True)


@pytest.fixture
def celery_worker(transactional_db):
    """A real Celery worker in a thread, consuming from the real Redis broker."""
    from celery.contrib.testing.worker import start_worker
    from kombu.asynchronous import set_event_loop

    from fetalsite.celery import app

    # Each worker its own event loop: kombu keeps one per process, and a second worker that reused the first's
    # would schedule ETA tasks (a retry's countdown) on its own timer while the loop fires the old one's.
    set_event_loop(None)
    with app.connection_for_write() as connection:
        for queue in app.amqp.queues:  # all of this run's queues (settings.celery_queues): it consumes them all
            connection.default_channel.queue_purge(queue)
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=60, loglevel="WARNING") as worker:
        yield worker


def wait_for(predicate, *, timeout: float = 60, interval: float = 0.2):
    """Poll until predicate() is truthy; return its value or fail with a clear message."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout} s")
