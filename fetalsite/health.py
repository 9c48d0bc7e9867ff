"""/health/ for load balancers: database, broker, file storage, active model file, a worker's ping."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from django.core.files.storage import default_storage
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from classifier.ml.inference import file_sha256
from classifier.registry import model_file_path
from classifier.selectors import active_model_version
from fetalsite.celery import app as celery_app

logger = logging.getLogger(__name__)
_verified_files: dict[tuple, str] = {}  # (path, size, mtime) -> sha256, so a probe does not hash 13 MB


def _database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return "reachable"


def _broker() -> str:
    with celery_app.connection_for_write() as broker:
        broker.ensure_connection(max_retries=1, timeout=2)
    return "reachable"


def _storage() -> str:
    """On S3, the bucket answers a HEAD with these credentials (404: no such bucket; 403: not allowed). Local disk
    is not probed: MEDIA_ROOT is made by the first upload."""
    bucket = getattr(default_storage, "bucket", None)  # django-storages' S3 backend
    if bucket is None:
        return "local disk"
    bucket.meta.client.head_bucket(Bucket=bucket.name)
    return f"bucket {bucket.name} reachable"


def _model() -> str:
    version = active_model_version()
    if version is None:
        raise RuntimeError("no active model")
    path = model_file_path(version)
    stat = os.stat(path)
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _verified_files:
        _verified_files[key] = file_sha256(path)
    if _verified_files[key] != version.sha256:
        raise RuntimeError(f"{version} file does not match its registered sha256")
    return f"{version.name}:{version.version} sha256 ok"


def _worker() -> str:
    replies = celery_app.control.ping(timeout=1.0, limit=1)
    if not replies:
        raise RuntimeError("no worker answered a ping within 1 s")
    return f"{next(iter(replies[0]))} answered"


CHECKS: dict[str, Callable[[], str]] = {
    "database": _database,
    "broker": _broker,
    "storage": _storage,
    "model": _model,
    "worker": _worker,
}


@never_cache
@require_GET
def health(request):
    results, healthy = {}, True
    for name, check in CHECKS.items():
        try:
            results[name] = {"ok": True, "detail": check()}
        except Exception as error:  # a health probe reports every failure instead of raising
            healthy = False
            results[name] = {"ok": False, "detail": f"{error.__class__.__name__}: {error}"[:300]}
            if name == "database":
                logger.warning("Health check: database unreachable: %s", error)
    body = {"status": "ok" if healthy else "unavailable", "checks": results}
    return JsonResponse(body, status=200 if healthy else 503)
