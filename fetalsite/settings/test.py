"""Tests: real PostgreSQL and Redis by default, a fast hasher, non-eager Celery."""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "test-only-secret-key")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/fetalsite")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")

from fetalsite.settings.base import *  # noqa: E402,F403

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
MEDIA_ROOT = tempfile.mkdtemp(prefix="fetal-test-media-")
CLASSIFY_RETRY_COUNTDOWN = 0
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
