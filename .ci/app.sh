#!/usr/bin/env bash
# Install everything and run the app: web, Celery worker, the DICOM receiver and Redis, demo data seeded.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/lib.sh

ensure_venv requirements.txt
ensure_report_libs
ensure_redis
mkdir -p var
export DJANGO_SETTINGS_MODULE=fetalsite.settings.local
# /metrics from this machine without a token (docs/metrics.md): curl http://127.0.0.1:8000/metrics
export METRICS_ALLOWED_NETWORKS="${METRICS_ALLOWED_NETWORKS:-127.0.0.1/32,::1/128}"
.venv/bin/python manage.py migrate --noinput -v0
.venv/bin/python manage.py register_models
.venv/bin/python manage.py seed_demo ${DEMO_PASSWORD:+--password "$DEMO_PASSWORD"}
.venv/bin/python manage.py seed_demo_dicom  # the demo DICOM sender; prints the receiver's AE title and port
cat <<TXT

  The app is starting at  http://127.0.0.1:${PORT:-8000}/   (API: /api/v1/, docs: /api/docs/, admin: /admin/)
  Log in with one of the demo users above. Ctrl-C stops the web server, the worker and the DICOM receiver.

TXT
exec .venv/bin/honcho -f .ci/Procfile.dev -d . start --port "${PORT:-8000}"
