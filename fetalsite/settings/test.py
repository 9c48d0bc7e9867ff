"""Tests: real PostgreSQL and Redis by default, a fast hasher, non-eager Celery."""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "test-only-secret-key")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/fetalsite")

from fetalsite.settings.base import *  # noqa: E402,F403

DEBUG = False
# Not through os.environ: Celery lets an environment variable override the app's setting.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/15")  # noqa: F405
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
MEDIA_ROOT = env("MEDIA_ROOT", default=tempfile.mkdtemp(prefix="fetal-test-media-"))  # noqa: F405
CLASSIFY_RETRY_COUNTDOWN = 0
MEASURE_RETRY_COUNTDOWN = 0
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405

# Several test runs may share this machine's PostgreSQL and Redis: each run gets its own
# test database and its own queue, so no run consumes another's messages or drops its tables.
TEST_RUN_ID = os.environ.setdefault("FETAL_TEST_RUN_ID", str(os.getpid()))
CELERY_TASK_QUEUES, CELERY_TASK_ROUTES, CELERY_TASK_DEFAULT_QUEUE = celery_queues(f"fetal-test-{TEST_RUN_ID}-")  # noqa: F405
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not :memory:, so the Celery worker thread and live server see the test data.
    _name = os.path.join(tempfile.gettempdir(), f"fetalsite-test-{TEST_RUN_ID}.sqlite3")
else:
    _name = f"test_fetalsite_{TEST_RUN_ID}"
    # Test data need not outlive a crash of the server: a commit does not wait for its WAL to reach the disk
    # (a transactional test's flush re-creates the permissions and roles in a hundred small commits).
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c synchronous_commit=off"  # noqa: F405
DATABASES["default"]["TEST"] = {"NAME": _name}  # noqa: F405

# Django's live server wraps the app in a media handler built from MEDIA_URL and fails on None;
# no page links under this prefix (images are only served through access-checked views).
MEDIA_URL = "/__live-server-media-unused__/"
# Serve static files from the apps' folders without collectstatic, as production serves them collected.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
# The API tests exercise each role's rights (a clinician's review, a sonographer's 403) through tokens, so
# those roles may hold one here; tests/api/test_token_rules.py proves the default (integrators only) refuses them.
API_TOKEN_ROLES = ["integrator", "sonographer", "clinician", "clinic_admin"]
# The API takes JSON bodies (uploads alone are multipart and say format="multipart"): APIClient sends JSON.
REST_FRAMEWORK["TEST_REQUEST_DEFAULT_FORMAT"] = "json"  # noqa: F405
