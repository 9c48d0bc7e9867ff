"""Development and the embedded demo: DEBUG on, SQLite, a local Redis."""

import os

os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("SECRET_KEY", "insecure-development-key-never-use-in-production")

from fetalsite.settings.base import *  # noqa: E402,F403
