"""Development and the embedded demo (`make run`): SQLite, a local Redis, plain HTTP on 127.0.0.1.

DEBUG is off unless the environment says ``DEBUG=true``: Django's debug page lists the settings and
the environment to whoever triggers an error, and the demo is used by people who log in, not only
by its developers. Developers opt in with ``DEBUG=true make run``."""

import os

os.environ.setdefault("SECRET_KEY", "insecure-development-key-never-use-in-production")

from fetalsite.settings.base import *  # noqa: E402,F403

# The demo is served over plain http://127.0.0.1:8000. A Secure cookie is never sent back over
# plain HTTP (curl, scripts, and browsers that do not treat 127.0.0.1 as a secure origin), so
# with base's "secure unless DEBUG" nobody could log in or pass the CSRF check. Production
# settings keep them secure; this only holds for the local demo.
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False

# runserver serves no static files with DEBUG off (whitenoise.runserver_nostatic is installed);
# whitenoise's middleware serves them straight from the apps' folders, without collectstatic.
WHITENOISE_USE_FINDERS = True

# Webhooks to a plain-http receiver stay possible in the demo, as they were while it ran with DEBUG.
WEBHOOK_ALLOW_HTTP = env.bool("WEBHOOK_ALLOW_HTTP", default=True)  # noqa: F405
