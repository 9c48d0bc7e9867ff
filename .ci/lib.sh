# Shared steps for `make run`, `make test` and CI: a virtualenv and the local services.
# Each step checks first and only installs or starts what is missing.

log() { printf '\033[1m==> %s\033[0m\n' "$*"; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "Please run as root (or install sudo) to: $*" >&2; return 1; fi
}

apt_install() {
  command -v apt-get >/dev/null || { echo "Install these packages with your package manager: $*" >&2; return 1; }
  log "Installing $* with apt-get"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_venv() {  # ensure_venv requirements-file
  local python=${PYTHON:-python3.11}
  command -v "$python" >/dev/null || python=python3
  "$python" -c 'import sys; assert sys.version_info[:2] >= (3, 11), sys.version' || {
    echo "Python 3.11 or newer is needed." >&2; return 1; }
  if [ ! -x .venv/bin/python ]; then
    log "Creating .venv"
    "$python" -m venv .venv 2>/dev/null || { apt_install python3-venv && "$python" -m venv .venv; }
  fi
  local stamp=".venv/.installed-$(cat "$@" requirements*.txt 2>/dev/null | sha256sum | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    log "Installing Python packages from $*"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -r "$1"
    rm -f .venv/.installed-*; touch "$stamp"
  fi
}

ensure_redis() {
  local host=${REDIS_HOST:-127.0.0.1} port=${REDIS_PORT:-6379}
  if .venv/bin/python -c "import redis,sys; redis.Redis(host='$host', port=$port, socket_timeout=2).ping()" 2>/dev/null; then
    return 0
  fi
  command -v redis-server >/dev/null || apt_install redis-server
  log "Starting Redis on $host:$port"
  mkdir -p /tmp/fetal-redis
  redis-server --daemonize yes --bind "$host" --port "$port" --save "" --appendonly no \
    --dir /tmp/fetal-redis --logfile /tmp/fetal-redis/redis.log
  for _ in $(seq 1 50); do
    .venv/bin/python -c "import redis; redis.Redis(host='$host', port=$port).ping()" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "Redis did not start; see /tmp/fetal-redis/redis.log" >&2; return 1
}

ensure_postgres() {
  # Tests use PostgreSQL on 127.0.0.1:5432 as the 'postgres' role unless DATABASE_URL says otherwise.
  [ -n "${DATABASE_URL:-}" ] && return 0
  command -v pg_ctlcluster >/dev/null || apt_install postgresql
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    log "Starting PostgreSQL"
    local version; version=$(ls /etc/postgresql | sort -V | tail -n1)
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
    for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
  fi
  if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1; then
    # A stock install asks for a password over TCP: give the tests their own role.
    log "Creating the PostgreSQL role 'fetalsite' for the tests"
    as_root su postgres -c "psql -v ON_ERROR_STOP=1 -tAc \"DO \\\$\\\$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'fetalsite') THEN
        CREATE ROLE fetalsite LOGIN CREATEDB PASSWORD 'fetalsite'; END IF; END \\\$\\\$;\""
    export DATABASE_URL=postgres://fetalsite:fetalsite@127.0.0.1:5432/fetalsite
  fi
}

ensure_chromium() {
  [ -x /usr/bin/chromium ] || apt_install chromium
}

ensure_dcmtk() {  # DICOM tests use real DCMTK tools (img2dcm makes test files; storescu/echoscu are peers)
  command -v img2dcm >/dev/null || apt_install dcmtk
}

ensure_orthanc() {  # tests/dicom/test_orthanc.py runs a real PACS (its own config, storage and free ports)
  local plugin=/usr/share/orthanc/plugins/libOrthancDicomWeb.so
  if ! PATH="$PATH:/usr/sbin" command -v Orthanc >/dev/null || [ ! -e "$plugin" ]; then
    apt_install orthanc orthanc-dicomweb
    # Debian's package may start a system Orthanc on 4242/8042; the tests never use those ports, but stop it anyway.
    if command -v systemctl >/dev/null && systemctl is-active --quiet orthanc 2>/dev/null; then
      as_root systemctl disable --now orthanc || true
    fi
  fi
}

ensure_curl() {  # docs/api.md's walkthrough is a curl script, run by tests/api/test_docs_walkthrough.py
  command -v curl >/dev/null || apt_install curl
}

ensure_report_libs() {  # the study report's PDF (WeasyPrint): Pango, and the DejaVu fonts it embeds by file path
  local missing=() libraries
  libraries=$(PATH="$PATH:/sbin:/usr/sbin" ldconfig -p 2>/dev/null || true)  # a variable: grep -q in a pipe trips pipefail
  grep -q 'libpango-1\.0\.so\.0' <<<"$libraries" || missing+=(libpango-1.0-0)
  grep -q 'libpangoft2-1\.0\.so\.0' <<<"$libraries" || missing+=(libpangoft2-1.0-0)
  [ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
  [ ${#missing[@]} = 0 ] || apt_install "${missing[@]}"
}
