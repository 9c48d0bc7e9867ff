"""Faults with real parts: a Redis that stops, a worker that is SIGKILLed, a database that refuses.

Each test would fail without the protection it names.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from classifier.models import ClassificationJob, Prediction
from classifier.services import job_start, jobs_requeue_stale
from fetalsite.celery import app as celery_app
from patients.services import image_upload
from tests.conftest import wait_for
from tests.images import png_bytes

pytestmark = pytest.mark.e2e
REPO = Path(settings.BASE_DIR)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def celery_broker(url: str):
    """Point the Celery app at another broker for the duration of a test."""
    previous = celery_app.conf.broker_url

    def switch(to: str) -> None:
        # Drop the app's references only: kombu keeps one pool per broker URL, shared process-wide.
        celery_app._pool = None
        celery_app.amqp._producer_pool = None
        # Settings loaded with the CELERY namespace are read under their Django name.
        celery_app.conf["CELERY_BROKER_URL"] = to

    switch(url)
    try:
        yield
    finally:
        switch(previous)


class RedisServer:
    """A private redis-server process that a test may stop and start again."""

    def __init__(self, port: int):
        self.port, self.process = port, None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        wait_for(lambda: self._answers(), timeout=10)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False


@pytest.fixture
def private_redis():
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed (make test installs it)")
    server = RedisServer(_free_port())
    server.start()
    yield server
    if server.process.poll() is None:
        server.stop()


def job_of(image) -> ClassificationJob:
    return ClassificationJob.objects.get(image=image)


class TestBrokerDown:
    def test_upload_succeeds_while_redis_is_down_and_completes_when_it_returns(
        self, transactional_db, private_redis, active_model, study, sonographer, settings
    ):
        settings.JOB_REQUEUE_UNSENT_AFTER_S = 0
        with celery_broker(f"redis://127.0.0.1:{private_redis.port}/0"):
            private_redis.stop()
            started = time.monotonic()
            images = [
                image_upload(study=study, data=png_bytes(seed=seed), filename=f"{seed}.png", uploaded_by=sonographer)
                for seed in range(3)
            ]
            assert time.monotonic() - started < 15, "an upload must not hang on a dead broker"
            for result in images:
                job = job_of(result.image)
                assert (job.status, job.celery_task_id) == (ClassificationJob.Status.QUEUED, "")
                assert result.image.file.storage.exists(result.image.file.name)

            private_redis.start()
            assert len(jobs_requeue_stale()) == 3  # what Celery beat runs every 30 s
            from celery.contrib.testing.worker import start_worker

            with start_worker(celery_app, pool="solo", perform_ping_check=False, loglevel="WARNING"):
                for result in images:
                    wait_for(lambda r=result: job_of(r.image).is_finished, timeout=60)
        assert all(job_of(r.image).status == ClassificationJob.Status.SUCCEEDED for r in images)
        assert Prediction.objects.count() == 3


def _worker_process(env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "fetalsite", "worker", "--pool", "solo", "--loglevel", "INFO",
         "--without-mingle", "--without-gossip", "--without-heartbeat"],
        cwd=REPO, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def _unacknowledged_since(task_id: str) -> float | None:
    """When Redis handed out the still unacknowledged message of ``task_id`` (kombu's own record), or None."""
    with celery_app.connection_for_write() as connection:
        channel = connection.default_channel
        for tag, payload in channel.client.hgetall(channel.unacked_key).items():
            if json.loads(payload)[0]["headers"].get("id") == task_id:
                return channel.client.zscore(channel.unacked_index_key, tag)
    return None


class TestWorkerKilled:
    def test_a_job_whose_worker_is_sigkilled_is_delivered_again_and_completes_once(
        self, transactional_db, active_model, study, sonographer, settings, media_root
    ):
        db = connection.settings_dict
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "fetalsite.settings.test",
            "FETAL_TEST_RUN_ID": settings.TEST_RUN_ID,
            "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
            if connection.vendor == "postgresql"
            else f"sqlite:///{db['NAME']}",
            "MEDIA_ROOT": str(media_root),
            "MODELS_DIR": str(settings.MODELS_DIR),
            # A short time limit makes the visibility timeout (twice it) short enough for a test.
            "CELERY_TASK_TIME_LIMIT": "4",
            "CELERY_TASK_SOFT_TIME_LIMIT": "3",
        }
        image = image_upload(study=study, data=png_bytes(), filename="k.png", uploaded_by=sonographer).image
        log = media_root.parent / "workers.log"
        print(f"worker log: {log}")
        first = _worker_process(env, log)
        try:
            # Loading TensorFlow and the model happens after the job is claimed: kill it right then.
            wait_for(lambda: job_of(image).status == ClassificationJob.Status.RUNNING, timeout=60, interval=0.02)
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=10)
            assert job_of(image).status == ClassificationJob.Status.RUNNING and not Prediction.objects.exists()
        finally:
            if first.poll() is None:
                os.killpg(first.pid, signal.SIGKILL)

        # Redis hands an unacknowledged message out again once it has been out for longer than the
        # visibility timeout (twice the task time limit, as base.py sets it): a worker restores such
        # messages when it starts. Wait until the killed worker's message is that old, then start one.
        visibility_timeout = 2 * int(env["CELERY_TASK_TIME_LIMIT"])
        handed_out_at = _unacknowledged_since(job_of(image).celery_task_id)
        assert handed_out_at is not None, "the killed worker's message should still be unacknowledged in Redis"
        wait_for(lambda: time.time() - handed_out_at > visibility_timeout, timeout=visibility_timeout + 10)
        second = _worker_process(env, log)
        try:
            wait_for(lambda: job_of(image).attempts == 2, timeout=60)  # picked up again
            job = wait_for(lambda: job_of(image) if job_of(image).is_finished else None, timeout=90)
        finally:
            os.killpg(second.pid, signal.SIGKILL)
            second.wait(timeout=10)
        assert job.status == ClassificationJob.Status.SUCCEEDED, job.error
        assert job.attempts == 2
        assert Prediction.objects.filter(job=job).count() == 1

    def test_a_job_that_keeps_killing_its_worker_ends_failed(self, db, active_model, study, sonographer, settings):
        image = image_upload(study=study, data=png_bytes(), filename="k.png", uploaded_by=sonographer).image
        long_ago = timezone.now() - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 1)
        ClassificationJob.objects.filter(image=image).update(
            status=ClassificationJob.Status.RUNNING, attempts=settings.CLASSIFY_MAX_RETRIES + 1, started_at=long_ago
        )
        assert job_start(job_id=job_of(image).id) is None
        job = job_of(image)
        assert job.status == ClassificationJob.Status.FAILED and "Gave up after" in job.error


class TestDatabaseErrorWhileSaving:
    def test_the_failed_save_rolls_back_and_the_retry_succeeds(
        self, celery_worker, active_model, study, sonographer, settings, media_root
    ):
        if connection.vendor != "postgresql":
            pytest.skip("adding a constraint to a live table needs PostgreSQL")
        # Retry at once and often enough to outlast the fault; the drop below ends it.
        settings.CLASSIFY_RETRY_COUNTDOWN = 0
        settings.CLASSIFY_MAX_RETRIES = 1000
        with connection.cursor() as cursor:  # every INSERT of a prediction now fails in the database
            cursor.execute("ALTER TABLE classifier_prediction ADD CONSTRAINT refuse_all CHECK (false) NOT VALID")
        try:
            image = image_upload(study=study, data=png_bytes(), filename="d.png", uploaded_by=sonographer).image
            wait_for(lambda: "refuse_all" in job_of(image).error, timeout=60, interval=0.05)
            assert not Prediction.objects.exists()
        finally:
            with connection.cursor() as cursor:
                cursor.execute("ALTER TABLE classifier_prediction DROP CONSTRAINT IF EXISTS refuse_all")
        job = wait_for(lambda: job_of(image) if job_of(image).is_finished else None, timeout=60)
        assert job.status == ClassificationJob.Status.SUCCEEDED and job.attempts >= 2 and job.error == ""
        assert Prediction.objects.filter(job=job).count() == 1
        assert job.history.filter(error__contains="refuse_all").exists()  # the failure is on record
        # Classification stores no heatmap (it is made when someone asks): no attempt leaves a file behind.
        assert not list((media_root / "heatmaps").glob("*.png")) and not job.prediction.heatmap


class TestHealth:
    def test_healthy_with_database_broker_model_and_a_worker(self, client, celery_worker, active_model):
        response = client.get("/health/")
        body = response.json()
        assert response.status_code == 200, body
        assert set(body["checks"]) == {"database", "broker", "storage", "model", "worker"}

    def test_503_without_a_worker_or_with_a_tampered_model(self, client, active_model, settings, tmp_path):
        response = client.get("/health/")
        assert response.status_code == 503 and not response.json()["checks"]["worker"]["ok"]

        shutil.copytree(settings.MODELS_DIR, tmp_path / "models")
        settings.MODELS_DIR = tmp_path / "models"
        (tmp_path / "models" / "tiny-v1.keras").write_bytes(b"tampered")
        model = client.get("/health/").json()["checks"]["model"]
        assert not model["ok"] and "sha256" in model["detail"]
