"""Real Celery workers as processes (``celery -A fetalsite worker``), for what only separate processes show: which
queues a worker consumes (-Q) and what its log says. They and the test share the test database, MEDIA_ROOT and a
Redis database of their own (``private_broker``), on this test run's queues (fetalsite.settings.test)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

from fetalsite.celery import app as celery_app
from tests.classifier.test_faults import celery_broker

BROKER_URL = "redis://127.0.0.1:6379/13"  # no other test uses this database


@contextmanager
def private_broker() -> Iterator[None]:
    """The test process sends to BROKER_URL, with this run's queues emptied first."""
    with celery_broker(BROKER_URL):
        with celery_app.connection_for_write() as broker:
            for queue in celery_app.amqp.queues:
                broker.default_channel.queue_purge(queue)
        yield


def worker_env(media_root: Path, **extra: str) -> dict[str, str]:
    db = connection.settings_dict
    database_url = (
        f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
        if connection.vendor == "postgresql"
        else f"sqlite:///{db['NAME']}"
    )
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "fetalsite.settings.test",
        "FETAL_TEST_RUN_ID": settings.TEST_RUN_ID,
        "DATABASE_URL": database_url,
        "MEDIA_ROOT": str(media_root),
        "MODELS_DIR": str(settings.MODELS_DIR),
        "CELERY_BROKER_URL": BROKER_URL,
        "LOG_FORMAT": "json",
        # Two things that write to stderr before or beside logging: TensorFlow's C++ runtime, and Celery's warning,
        # at start, against running as root (as tests here do; production runs the worker as its own user).
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONWARNINGS": "ignore:You're running the worker with superuser privileges",
        **extra,
    }


def queue_name(name: str) -> str:
    """This test run's name for one of the four queues (settings.TASK_QUEUES)."""
    return settings.CELERY_TASK_DEFAULT_QUEUE.removesuffix("housekeeping") + name


@contextmanager
def worker_process(env: dict, *, name: str, log: Path, queues: list[str] | None = None) -> Iterator[None]:
    """One solo worker named ``name`` writing its log to ``log``; -Q ``queues`` (this run's names) when given, else
    the default: every queue. Stopped (TERM, then KILL) at the end of the block."""
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "fetalsite",
        "--quiet",
        "worker",
        "--pool",
        "solo",
        "-n",
        f"{name}@%h",
        "--loglevel",
        "INFO",
        "--without-mingle",
        "--without-gossip",
        "--without-heartbeat",
    ]
    if queues:
        command += ["-Q", ",".join(queue_name(queue) for queue in queues)]
    # The log is stderr, where logging writes; Celery prints its own few lines (the shutdown notice) to stdout.
    with log.open("ab") as errors, log.with_suffix(".stdout").open("ab") as output:
        process = subprocess.Popen(
            command, cwd=settings.BASE_DIR, env=env, stdout=output, stderr=errors, start_new_session=True
        )
    try:
        yield
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def json_log(log: Path) -> list[dict]:
    """Every line of the worker's stderr, each parsed as JSON: a line that is not JSON fails the test."""
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def tasks_received(log: list[dict]) -> set[str]:
    """The task names of the worker's "Task <name>[<id>] received" lines."""
    prefix = "Task "
    return {
        line["message"].removeprefix(prefix).split("[", 1)[0]
        for line in log
        if line["message"].startswith(prefix) and line["message"].endswith(" received")
    }
