"""Settings shared by every environment; values come from the environment."""

from pathlib import Path

import environ
from kombu import Exchange, Queue

BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env("SECRET_KEY")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from our own static files: no CDN, CSP-clean
    "simple_history",
    "axes",
    "csp",
    "fetalsite.core",
    "fetalsite.metrics",
    "fetalsite.accounts",
    "patients",
    "classifier",
    "biometry",
    "fetalsite.audit",
    "dicom",
]

MIDDLEWARE = [
    # First: every later middleware, view, job and log line sees the request id (fetalsite/core/request_id.py).
    "fetalsite.core.request_id.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # After WhiteNoise (static files keep their own caching), before everything that may answer.
    "fetalsite.core.cache_headers.CacheControlMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "fetalsite.audit.middleware.AccessLogMiddleware",
    "fetalsite.accounts.middleware.IdleSessionTimeoutMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "fetalsite.urls"
WSGI_APPLICATION = "fetalsite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# The embedded default is a SQLite file; production sets DATABASE_URL to PostgreSQL.
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web process and the worker write at the same time: take the write lock when a transaction
    # starts (a deferred one fails at once with "database is locked" when it upgrades), wait for it,
    # and let readers go on during a write (WAL).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # lock-out after repeated failures, checked first
    "fetalsite.accounts.backends.PersonBackend",  # ModelBackend, minus service accounts
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
# Uploaded images are never served as public media: a view checks access first.
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "var" / "media")
MEDIA_URL = None
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Object storage (docs/deploy.md): with a bucket named, every stored file (originals, display PNGs, playback
# videos, heatmaps) goes to S3 or an S3-compatible store, so web and worker hosts need no shared disk.
# Credentials come from boto3's usual chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or the host's role).
S3_BUCKET = env("S3_BUCKET", default=env("AWS_STORAGE_BUCKET_NAME", default=""))
if S3_BUCKET:
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": S3_BUCKET,
            "location": env("S3_PREFIX", default=""),
            "endpoint_url": env("S3_ENDPOINT_URL", default=None),  # MinIO, Ceph, moto...; None: AWS
            "region_name": env("S3_REGION", default=None),
            "addressing_style": env("S3_ADDRESSING_STYLE", default=None),  # "path" for most self-hosted stores
            # Private objects, and no signed URLs: files reach browsers only through the access-checked views.
            # S3_DEFAULT_ACL= (empty) sends no ACL, for AWS buckets with ACLs disabled (objects are private there).
            "default_acl": env("S3_DEFAULT_ACL", default="private") or None,
            "querystring_auth": False,
            "file_overwrite": False,
            # A file read through the app is downloaded whole; past this size it spills to a temporary file.
            "max_memory_size": env.int("S3_MAX_MEMORY_SIZE", default=8 * 1024 * 1024),
        },
    }

# Where model artifacts and their cards live.
MODELS_DIR = env.path("MODELS_DIR", default=BASE_DIR / "models")
# What runs the model in the worker: "litert" (the card's LiteRT file: no TensorFlow in the worker's process; Keras
# when the card lists none or its file fails its sha256 check) or "keras". Heatmaps always use Keras.
INFERENCE_RUNTIME = env("INFERENCE_RUNTIME", default="litert")
# Threads one worker process gives the model (LiteRT's, or TensorFlow's pools). 2 gave two prefork processes more
# images a second than 1 on the 2-core machine (docs/performance.md, "Model alone"); measure a worker host's own.
INFERENCE_THREADS = env.int("INFERENCE_THREADS", default=2)
# The fetal head segmentation model that measures brain planes (issue 21, docs/biometry.md): its card, loaded once
# per worker process (biometry/registry.py); the card's name is each measurement job's model_version.
BIOMETRY_MODEL_CARD = env.path("BIOMETRY_MODEL_CARD", default=BASE_DIR / "models" / "fetal-head-v2.card.json")

# Upload limits (bytes and decoded pixels).
UPLOAD_MAX_BYTES = env.int("UPLOAD_MAX_BYTES", default=50 * 1024 * 1024)
UPLOAD_MAX_PIXELS = env.int("UPLOAD_MAX_PIXELS", default=40_000_000)
# Memory to decode one upload (width x height x bytes per sample x channels, from the header).
# An ultrasound frame needs at most ~16 MB; 128 MB admits 40 MP of 8- or 16-bit grey.
UPLOAD_MAX_DECODED_BYTES = env.int("UPLOAD_MAX_DECODED_BYTES", default=128 * 1024 * 1024)
# A cine loop (multi-frame DICOM, MP4/AVI/MOV): the limits above hold per frame; these bound the whole clip,
# since each frame is decoded and classified (600 frames is 20 s at 30 fps).
CINE_MAX_FRAMES = env.int("CINE_MAX_FRAMES", default=600)
CINE_MAX_DURATION_S = env.float("CINE_MAX_DURATION_S", default=120.0)
# All of a clip's frames' pixels together: 600 frames of 800x800, or 200 of 1414x1414.
CINE_MAX_TOTAL_PIXELS = env.int("CINE_MAX_TOTAL_PIXELS", default=400_000_000)
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# Celery: the task carries a job id; results live in the database, not in Celery.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/0")
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=120)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=180)
# Redelivery after a lost worker must wait longer than any task may run.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT * 2}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CLASSIFY_MAX_RETRIES = env.int("CLASSIFY_MAX_RETRIES", default=3)
CLASSIFY_RETRY_COUNTDOWN = env.int("CLASSIFY_RETRY_COUNTDOWN", default=5)
# A measurement job (biometry.tasks.measure_image) retries transient failures the same way, then fails for good.
MEASURE_MAX_RETRIES = env.int("MEASURE_MAX_RETRIES", default=3)
MEASURE_RETRY_COUNTDOWN = env.int("MEASURE_RETRY_COUNTDOWN", default=5)
# A worker predicts up to this many queued stills of one model in one batch, never waiting for more (1: off).
MICRO_BATCH_MAX = env.int("MICRO_BATCH_MAX", default=8)
# A clip's frames go through the model this many at a time: one batch of decoded and preprocessed frames in memory.
CINE_BATCH_SIZE = env.int("CINE_BATCH_SIZE", default=16)
# With the broker down an upload must not hang: give up publishing quickly; the sweeper resends.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}
CELERY_BROKER_CONNECTION_TIMEOUT = 3
# The sweeper (Celery beat) resends jobs that never reached the broker or waited too long.
JOB_REQUEUE_UNSENT_AFTER_S = env.int("JOB_REQUEUE_UNSENT_AFTER_S", default=30)
JOB_REQUEUE_WAITING_AFTER_S = env.int("JOB_REQUEUE_WAITING_AFTER_S", default=15 * 60)
CELERY_BEAT_SCHEDULE = {
    "requeue-stale-jobs": {"task": "classifier.tasks.requeue_stale_jobs", "schedule": 30.0},
    "requeue-stale-measurement-jobs": {"task": "biometry.tasks.requeue_stale_measurement_jobs", "schedule": 30.0},
}

# ---- Celery queues (issue 20) ---------------------------------------------------------------------
# Each kind of task has its own queue, so that a storm of webhook deliveries or heatmaps never waits in front
# of a prediction: production runs separate workers per queue (Procfile, docs/deploy.md). A worker started
# without -Q consumes all five (make run, the tests' in-process workers).
TASK_QUEUES = {
    "classifier.tasks.classify_image": "classify",
    "biometry.tasks.measure_image": "measure",  # after a brain plane is found; its own workers may scale apart
    "classifier.tasks.heatmap_render": "heatmaps",  # Grad-CAM when someone asks: never before a prediction
    "classifier.tasks.webhook_delivery_attempt": "webhooks",
    "classifier.tasks.requeue_stale_jobs": "housekeeping",  # Celery beat's jobs
    "biometry.tasks.requeue_stale_measurement_jobs": "housekeeping",
}


def celery_queues(prefix: str = "") -> tuple[list[Queue], dict[str, dict], str]:
    """CELERY_TASK_QUEUES, CELERY_TASK_ROUTES and CELERY_TASK_DEFAULT_QUEUE with every queue's name after
    ``prefix`` (each test run has its own). A task routed nowhere goes to housekeeping, not before predictions."""
    # Each queue its own exchange and routing key: left blank, Celery binds every queue to the default one's key,
    # and a message published to one would be copied into all of them.
    names = [prefix + name for name in dict.fromkeys(TASK_QUEUES.values())]
    queues = [Queue(name, Exchange(name, type="direct"), routing_key=name) for name in names]
    routes = {task: {"queue": prefix + name} for task, name in TASK_QUEUES.items()}
    return queues, routes, prefix + "housekeeping"


CELERY_TASK_QUEUES, CELERY_TASK_ROUTES, CELERY_TASK_DEFAULT_QUEUE = celery_queues()

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "fetalsite.core.api_errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # No ?format=: every query parameter is the operation's own (fetalsite.core.api_views); the media
    # type is chosen with the Accept header.
    "URL_FORMAT_OVERRIDE": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Fetal ultrasound plane classifier API",
    "DESCRIPTION": "Patients, studies, image uploads and model predictions for one clinic.",
    "VERSION": "1.4.0",  # semver, per docs/api-changelog.md: minor for additions, major with a new /api/vN/
    "SERVE_INCLUDE_SCHEMA": False,
}

# Plain text for people (make run, tests); "json" (production's default) writes one JSON object a line for a log
# collector: timestamp, level, logger, message, request_id and, in the worker, job_id. The Celery worker logs
# through this same configuration (fetalsite/celery.py).
LOG_FORMAT = env("LOG_FORMAT", default="plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "fetalsite.core.request_id.RequestIdLogFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": ["levelname", "name", "message", "request_id", "job_id"],
            "rename_fields": {"levelname": "level", "name": "logger"},
            "timestamp": True,  # ISO 8601, UTC
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
}

# ---- Integrator API (issue 5): auth that logs, throttles, parsers, pagination, uploads ---------
REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"] = [
    "fetalsite.accounts.authentication.LoggedTokenAuthentication",
    "rest_framework.authentication.SessionAuthentication",
]
REST_FRAMEWORK["DEFAULT_PAGINATION_CLASS"] = "fetalsite.core.api_utils.ApiPagination"
# Request bodies are JSON only (other types answer 415), so the schema offers a generated client one
# body type per operation; the image upload declares its own multipart parser.
REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"] = ["fetalsite.core.api_utils.LimitedJSONParser"]
REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] = [
    "fetalsite.core.api_utils.ApiUserRateThrottle",
    "fetalsite.core.api_utils.ApiAnonRateThrottle",
]
# Per user (token) and per client address for anonymous requests and password attempts.
API_THROTTLE_RATES = {
    "user": env("API_THROTTLE_RATE_USER", default="1200/minute"),
    "anon": env("API_THROTTLE_RATE_ANON", default="60/minute"),
    "login": env("API_THROTTLE_RATE_LOGIN", default="10/minute"),
}
# Throttle counters: a local-memory cache by default; point API_THROTTLE_CACHE_URL at Redis
# (e.g. redis://127.0.0.1:6379/2) when several web processes must share the counts.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "api-throttle": env.cache("API_THROTTLE_CACHE_URL", default="locmemcache://api-throttle"),
}
API_THROTTLE_CACHE = "api-throttle"
# How many `file` parts one upload request may carry.
UPLOAD_MAX_FILES_PER_REQUEST = env.int("UPLOAD_MAX_FILES_PER_REQUEST", default=20)
# How long an Idempotency-Key's stored response is replayed.
IDEMPOTENCY_KEY_TTL_HOURS = env.int("IDEMPOTENCY_KEY_TTL_HOURS", default=24)
# API tokens (docs/api.md): a token older than this is refused and a new login issues a fresh one.
API_TOKEN_TTL_DAYS = env.int("API_TOKEN_TTL_DAYS", default=30)
# Role names (fetalsite.accounts.roles.Role) whose members may hold an API token; people use the web app.
API_TOKEN_ROLES = env.list("API_TOKEN_ROLES", default=["integrator"])

# ---- DICOM receiver (python manage.py dicom_receiver; docs/dicom.md) ------------------------------
DICOM_RECEIVER_HOST = env("DICOM_RECEIVER_HOST", default="127.0.0.1")
DICOM_RECEIVER_PORT = env.int("DICOM_RECEIVER_PORT", default=11112)
DICOM_RECEIVER_AE_TITLE = env("DICOM_RECEIVER_AE_TITLE", default="FETALSITE")

# ---- Webhooks: signed POSTs to each clinic's registered callback --------------------------------
# The address integrators reach this server at: webhook payloads carry absolute links built on it.
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", default="http://127.0.0.1:8000")
# Plain-HTTP callback URLs are refused unless DEBUG (or this flag, for tests on 127.0.0.1).
WEBHOOK_ALLOW_HTTP = env.bool("WEBHOOK_ALLOW_HTTP", default=False)
# Callback hosts must resolve to public addresses only (checked at registration and at every delivery);
# these CIDRs are the exceptions, e.g. "10.20.0.0/16" for a hospital's integration engine. Empty: none.
WEBHOOK_ALLOWED_NETWORKS = env.list("WEBHOOK_ALLOWED_NETWORKS", default=[])
WEBHOOK_TIMEOUT_S = env.float("WEBHOOK_TIMEOUT_S", default=10.0)
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=8)
# Backoff: base * 2 ** (attempt - 1) seconds, at most WEBHOOK_RETRY_MAX_S.
WEBHOOK_RETRY_BASE_S = env.float("WEBHOOK_RETRY_BASE_S", default=30.0)
WEBHOOK_RETRY_MAX_S = env.float("WEBHOOK_RETRY_MAX_S", default=3600.0)
# The sweeper resends a delivery this long after it should have been sent.
WEBHOOK_REQUEUE_AFTER_S = env.int("WEBHOOK_REQUEUE_AFTER_S", default=120)

SPECTACULAR_SETTINGS.update(
    {
        "DESCRIPTION": (
            "The integrator API of the fetal ultrasound plane classifier: patients, studies, image uploads, "
            "classification jobs, predictions, clinician reviews, model versions and change history, always "
            "scoped to your clinic (another clinic's record answers 404, like a missing one).\n\n"
            "Authenticate with `Authorization: Token <key>` (get the key from `POST /api/v1/auth/token/`). "
            'Every error is JSON: `{"detail", "code"}`, plus `fields` on validation errors and MRN conflicts. '
            "Lists take `limit` (1 to 200) and `offset`; every query parameter is checked (an unknown, repeated or "
            "empty one, or a boolean other than `true`/`false`, is a 400). "
            "Results can be pushed to you by signed webhooks; see "
            "docs/api.md. Changes and the versioning policy: docs/api-changelog.md."
        ),
        # 3.1: JSON Schema proper (null as a type) and a place for the webhook events.
        "OAS_VERSION": "3.1.0",
        "COMPONENT_SPLIT_REQUEST": True,
        # The events POSTed to a clinic's webhook endpoints, with the headers every delivery carries.
        "WEBHOOKS": [
            *(
                f"classifier.webhook_events.{name}_WEBHOOK"
                for name in ("PREDICTION_CREATED", "PREDICTION_REVIEWED", "JOB_FAILED", "TEST")
            ),
            "biometry.webhook_events.MEASUREMENT_CREATED_WEBHOOK",
            "biometry.webhook_events.MEASUREMENT_REVIEWED_WEBHOOK",
        ],
        "POSTPROCESSING_HOOKS": [
            "drf_spectacular.hooks.postprocess_schema_enums",
            "classifier.webhook_events.webhook_headers_postprocess",
            # Retry-After, Idempotent-Replayed, Location and Content-Disposition where responses carry them.
            "fetalsite.core.schema_headers.response_headers_postprocess",
        ],
        "ENUM_NAME_OVERRIDES": {
            "FetalPlaneEnum": "classifier.labels.FetalPlane",
            "StudyStatusEnum": "patients.models.Study.Status",
            "JobStatusEnum": "classifier.models.ClassificationJob.Status",
            "ImageFormatEnum": "patients.models.UltrasoundImage.Format",
            "MeasurementReviewStateEnum": "biometry.models.Measurement.ReviewState",
            "MeasurementReviewActionEnum": "biometry.services.REVIEW_ACTIONS",
            # The history entries' action (patients.apis.HistoryEntryOutputSerializer) keeps its name beside the
            # measurement review's action.
            "ActionEnum": ["created", "changed", "deleted"],
        },
        "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
        "SWAGGER_UI_DIST": "SIDECAR",
        "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
        "REDOC_DIST": "SIDECAR",
        "SERVE_AUTHENTICATION": [],
    }
)

# How many reverse proxies in front of the app append to X-Forwarded-For (0: use REMOTE_ADDR).
# The access log, login logs and lock-out then record the client's address, not the proxy's.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

# /metrics (docs/metrics.md) answers a scraper that sends "Authorization: Bearer <METRICS_TOKEN>" or whose address
# (as above) is in one of these networks (CIDR, comma-separated); anyone else gets a 404. Neither set: always 404.
METRICS_TOKEN = env("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=[])

# ---- Sessions, lock-out and security headers (issue 6) ------------------------------------------
# Log off after this much idle time; the study page's background polling does not count as activity.
SESSION_IDLE_TIMEOUT_S = env.int("SESSION_IDLE_TIMEOUT_S", default=15 * 60)
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=12 * 60 * 60)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# django-axes: five failed logins for one username from one address lock it for 15 minutes.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=0.25)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False
AXES_CLIENT_IP_CALLABLE = "fetalsite.core.client_ip.client_ip"
# Content Security Policy: everything from this origin, nothing inline, no framing.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "connect-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'self'"],
        "object-src": ["'none'"],
    },
}
REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"] = "fetalsite.core.api_schema.ApiAutoSchema"
# No OPTIONS metadata: the API is described by its OpenAPI schema (OPTIONS answers 405).
REST_FRAMEWORK["DEFAULT_METADATA_CLASS"] = None
