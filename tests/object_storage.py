"""What the object storage tests share: a local S3-compatible server (moto in server mode), the app pointed at
it, a broker of their own, and Celery workers run as separate processes that share no disk with the test
(the web process) or with each other: each has its own working directory and an empty MEDIA_ROOT."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from django.conf import settings
from django.db import connection

from fetalsite.celery import app as celery_app
from tests.classifier.test_faults import celery_broker
from tests.conftest import wait_for

REPO = Path(settings.BASE_DIR)
BUCKET = "fetal-test-media"
# Not the other tests' Redis DB (15): the workers started here must not take their messages, nor they ours.
BROKER_URL = "redis://127.0.0.1:6379/13"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test-key", "AWS_SECRET_ACCESS_KEY": "test-secret"}
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class S3Server:
    endpoint: str

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def object_keys(self) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def read(self, key: str) -> bytes:
        return self.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()

    def object_acl_grants(self, key: str) -> list[dict]:
        return self.client().get_object_acl(Bucket=BUCKET, Key=key)["Grants"]


@pytest.fixture(scope="module")
def s3_server():
    """moto's S3 in a thread of this process, answering HTTP on a free port: the workers reach it as a
    separate service, as they would reach AWS S3, MinIO or Ceph."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per S3 request in a failure's report
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    try:
        yield S3Server(endpoint=f"http://127.0.0.1:{server._port}")
    finally:
        server.stop()


@pytest.fixture
def s3_media(s3_server, settings):
    """An empty bucket, and this process's default storage on it exactly as base.py configures it from the
    environment (S3_BUCKET, S3_ENDPOINT_URL, S3_REGION and the AWS credentials)."""
    client = s3_server.client()
    client.create_bucket(Bucket=BUCKET)
    settings.STORAGES = {**settings.STORAGES, "default": s3_storage_setting(s3_server)}
    yield s3_server
    for key in s3_server.object_keys():
        client.delete_object(Bucket=BUCKET, Key=key)
    client.delete_bucket(Bucket=BUCKET)


def base_storage_setting(environment: dict[str, str]) -> dict:
    """base.py's STORAGES["default"] as a fresh process reads it from ``environment`` (and no other S3 or AWS
    variable)."""
    clean = {name: value for name, value in os.environ.items() if not name.startswith(("S3_", "AWS_"))}
    code = "import json; from fetalsite.settings import base; print(json.dumps(base.STORAGES['default']))"
    found = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**clean, "SECRET_KEY": "unused", **environment},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(found.stdout)


def s3_storage_setting(server: S3Server) -> dict:
    """base.py's STORAGES["default"] for this server, from the S3 variables a host would set."""
    storage = base_storage_setting(s3_environment(server))
    # This process has no AWS variables in its environment: pass the credentials as options instead.
    storage["OPTIONS"] |= {
        "access_key": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "secret_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    }
    return storage


def s3_environment(server: S3Server) -> dict[str, str]:
    return {"S3_BUCKET": BUCKET, "S3_ENDPOINT_URL": server.endpoint, "S3_REGION": REGION, **CREDENTIALS}


@pytest.fixture
def own_broker():
    """This module's Redis DB as the broker of the test process, its queues empty."""
    with celery_broker(BROKER_URL):
        with celery_app.connection_for_write() as broker:
            for queue in {celery_app.conf.task_default_queue, *celery_app.amqp.queues}:
                broker.default_channel.queue_purge(queue)
        yield BROKER_URL


def files_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()] if folder.exists() else []


class WorkerProcess:
    """``celery worker`` as another host would run it: its own working directory and MEDIA_ROOT (both empty
    temporary folders), the code from PYTHONPATH, and only the database, the broker and S3 in common."""

    def __init__(self, name: str, home: Path, *, s3: S3Server):
        self.name, self.home = name, home
        self.cwd, self.media_root, self.log = home / "cwd", home / "media", home / f"{name}.log"
        self.cwd.mkdir(parents=True)
        self.media_root.mkdir()
        db = connection.settings_dict
        self.env = {
            **os.environ,
            **s3_environment(s3),
            "PYTHONPATH": str(REPO),
            "DJANGO_SETTINGS_MODULE": "fetalsite.settings.test",
            "FETAL_TEST_RUN_ID": settings.TEST_RUN_ID,
            "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "CELERY_BROKER_URL": BROKER_URL,
            "MEDIA_ROOT": str(self.media_root),
            "MODELS_DIR": str(settings.MODELS_DIR),
        }
        self.process: subprocess.Popen | None = None

    @property
    def hostname(self) -> str:
        return f"{self.name}@rehearsal"

    def start(self) -> WorkerProcess:
        command = [sys.executable, "-m", "celery", "-A", "fetalsite", "worker", "--pool", "solo", "--loglevel",
                   "INFO", "--hostname", self.hostname, "--without-mingle", "--without-gossip"]  # fmt: skip
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    def wait_ready(self, timeout: float = 120) -> None:
        """Until the worker logs that it is ready: its consumer is then started and waiting for tasks. (Its log,
        not a ping: after other tests' in-process workers, this process's broadcast replies can go astray, and a
        worker that was ready in a second was waited on for two minutes.)"""
        wait_for(lambda: self._ready() or self._died(), timeout=timeout, interval=0.2)
        assert self.process.poll() is None, f"{self.name} exited: {self.log.read_text()[-3000:]}"

    def _ready(self) -> bool:
        return f"{self.hostname} ready." in self.log.read_text(errors="replace")

    def _died(self) -> bool:
        return self.process.poll() is not None

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def tasks_done(self, task_name: str) -> list[str]:
        """The ids of the ``task_name`` tasks this worker's log says it finished ("Task name[id] succeeded")."""
        finished = re.compile(rf"Task {re.escape(task_name)}\[([0-9a-f-]+)\] succeeded in ")
        return finished.findall(self.log.read_text(errors="replace"))


def skip_unless_postgresql(reason: str = "") -> None:
    if connection.vendor != "postgresql":
        pytest.skip(
            reason
            or "worker processes on other hosts share PostgreSQL, not a SQLite file; object storage is not about "
            "the database, so these tests run once, on PostgreSQL"
        )
