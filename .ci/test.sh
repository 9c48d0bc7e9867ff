#!/usr/bin/env bash
# Install what the tests need, start PostgreSQL, Redis (and find Chromium), lint, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/lib.sh

requirements=requirements-dev.txt
[ -f requirements-train.txt ] && requirements=requirements-train.txt
ensure_venv "$requirements"
ensure_redis
ensure_postgres
ensure_chromium

log "ruff, djLint"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/djlint templates --lint
log "pytest"
exec .venv/bin/python -m pytest "$@"
