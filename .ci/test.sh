#!/usr/bin/env bash
# Install what the tests need, start PostgreSQL, Redis (and find Chromium and curl), lint, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/lib.sh

requirements=requirements-dev.txt
[ -f requirements-train.txt ] && requirements=requirements-train.txt
ensure_venv "$requirements"
ensure_report_libs
ensure_redis
ensure_postgres
ensure_chromium
ensure_curl
ensure_dcmtk
ensure_orthanc

log "ruff, import-linter, djLint"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/lint-imports --no-cache  # the layers of docs/architecture.md (contracts in pyproject.toml)
.venv/bin/djlint templates --lint
log "pytest"
exec .venv/bin/python -m pytest --durations=15 "$@"  # the slowest tests, to keep CI under 20 minutes
