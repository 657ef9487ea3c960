"""Django settings for the Orchestrator, all read from environment variables.

Every setting is listed with its meaning in `.env.example` and
`docs/guides/operations.md`.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from orchestrator.env import env_bool, env_duration, env_float, env_int, env_int_map, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY")
# `make run` keeps a development key in this file (out of git and out of the
# image): commands run by hand in the same checkout, such as
# `.venv/bin/python manage.py createsuperuser`, find it without SECRET_KEY set.
SECRET_KEY_FILE = Path(env_str("SECRET_KEY_FILE") or BASE_DIR / ".secret_key")
if not SECRET_KEY and SECRET_KEY_FILE.is_file():
    SECRET_KEY = SECRET_KEY_FILE.read_text().strip()
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set unless DEBUG=true "
            "(`make run` writes one to .secret_key for this checkout)"
        )
    # Debug only: a key per process, so nothing signed survives a restart.
    SECRET_KEY = secrets.token_urlsafe(50)

# Older keys that still verify what they signed (and decrypt webhook secrets)
# while SECRET_KEY is rotated.
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "*")
# Enforced on every path but the probes, which a cluster asks by pod address.
HOST_CHECK_EXEMPT_PATHS = ("/health", "/ready")
PORT = env_int("PORT", 7070, minimum=1)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # Checks the SERVESTATIC_* settings (orchestrator.middleware.static_files).
    "servestatic",
    "rest_framework",
    "drf_spectacular",
    "runs",
    "journal",
    "webhooks",
    "schedules",
    "tenants",
    "audit",
    "corsheaders",
]

# Under ASGI every sync middleware costs thread hops on every request, so the
# API path keeps to async-capable ones; the admin's session machinery runs
# only under /admin/ (see AdminOnlyMiddleware). Our guards come right after
# what every answer needs (request id, response headers): access log, CORS
# (preflight, and headers on every answer, refusals included), rate limit,
# API key; then the rest. What each guard protects is in SECURITY.md.
MIDDLEWARE = [
    "orchestrator.middleware.request.RequestIDMiddleware",
    "orchestrator.middleware.request.ResponseHeadersMiddleware",
    "orchestrator.middleware.access_log.AccessLogMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "orchestrator.middleware.ratelimit.RateLimitMiddleware",
    "orchestrator.middleware.auth.APIKeyMiddleware",
    "orchestrator.middleware.body_limit.BodySizeLimitMiddleware",
    "orchestrator.middleware.request.AllowedHostsMiddleware",
    "orchestrator.middleware.request.QueryStringMiddleware",
    "orchestrator.middleware.startup_checks.StartupChecksMiddleware",
    "orchestrator.middleware.static_files.StaticFilesMiddleware",
    "orchestrator.middleware.request.AdminOnlyMiddleware",
]
ADMIN_PATH_PREFIX = "/admin/"
# The admin's checks look for its middleware in MIDDLEWARE; they run, for the
# admin's paths, inside AdminOnlyMiddleware.
SILENCED_SYSTEM_CHECKS = ["admin.E408", "admin.E409", "admin.E410"]
ADMIN_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "audit.middleware.AdminActorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "orchestrator.urls"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

ASGI_APPLICATION = "orchestrator.asgi.application"
WSGI_APPLICATION = "orchestrator.wsgi.application"

# Unset DATABASE_URL means an embedded SQLite file, so a first `make run` needs
# nothing installed. Production and the test suite use PostgreSQL.
_DEFAULT_SQLITE = f"sqlite:///{BASE_DIR / 'orchestrator.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(env_str("DATABASE_URL") or _DEFAULT_SQLITE)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Under ASGI every request runs on a fresh thread, so Django's persistent
    # per-thread connections would leak; a process-wide pool replaces them.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # Names this process's connections in pg_stat_activity.
    DATABASES["default"].setdefault("OPTIONS", {})["application_name"] = env_str(
        "DB_APPLICATION_NAME", "orchestrator"
    )
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": env_int("DB_POOL_MIN_SIZE", 1, minimum=0),
        "max_size": env_int("DB_POOL_MAX_SIZE", 8, minimum=1),
        "timeout": env_float("DB_POOL_TIMEOUT", 10.0),
    }
else:
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# The only static files are the admin's: under its prefix, every guard that
# treats the admin apart from the API (sessions, API keys, CORS) covers them.
STATIC_URL = "admin/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# Request guards. The body limit is checked before a byte of the body is
# parsed; the others bound what one request can store.
MAX_BODY_BYTES = env_int("MAX_BODY_BYTES", 4 * 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_BODY_BYTES
MAX_CHECKPOINT_BATCH = env_int("MAX_CHECKPOINT_BATCH", 500, minimum=1)
MAX_CHECKPOINT_DATA_BYTES = env_int("MAX_CHECKPOINT_DATA_BYTES", 256 * 1024, minimum=64)

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["runs.api.parsers.StrictJSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "orchestrator.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Orchestrator API",
    "DESCRIPTION": "Schedules runs, dispatches them to Redis workers or Kubernetes Jobs, "
    "collects their checkpoints and streams each run's life over Server-Sent Events.",
    "VERSION": "1.0.0",
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": False,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "runs.api.openapi.add_wire_schemas",
        "runs.api.openapi.mark_required_bodies",
        "runs.api.openapi.describe_query_values",
        "runs.stream.openapi.add_event_stream",
        "orchestrator.openapi.add_security",
    ],
}

# Orchestrator behaviour.
ORCHESTRATOR_BACKENDS = {
    "redis": env_str("ORCHESTRATOR_REDIS_BACKEND", "runs.redis.backend.RedisBackend"),
    "k8s": env_str("ORCHESTRATOR_K8S_BACKEND", "runs.k8s.backend.KubernetesBackend"),
}
PLAN_DEFAULT_TARGET = env_str("PLAN_DEFAULT_TARGET", "redis")
REDIS_URL = env_str("REDIS_URL")

LOG_FORMAT = env_str("LOG_FORMAT", "plain" if DEBUG else "json")
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "orchestrator.logging.RequestIDFilter"},
        "redact": {"()": "orchestrator.logging.RedactCredentialsFilter"},
    },
    "formatters": {
        "json": {"()": "orchestrator.logging.JSONFormatter"},
        "plain": {"()": "orchestrator.logging.PlainFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT if LOG_FORMAT in ("json", "plain") else "json",
            "filters": ["request_id", "redact"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "WARNING"},
        # httpx logs every request at INFO ("HTTP Request: GET ..."): noise in
        # `runs_tail`'s output and in the log of anything that calls out.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        "orchestrator.access": {"level": env_str("ACCESS_LOG_LEVEL", "INFO")},
    },
}

# Scoped run tokens (runs.tokens).
STREAM_TOKEN_TTL_SECONDS = env_int("STREAM_TOKEN_TTL_SECONDS", 300, minimum=10)
WORKER_TOKEN_TTL_SECONDS = env_int("WORKER_TOKEN_TTL_SECONDS", 7 * 24 * 3600, minimum=60)

# --- Kubernetes mode ---
# How to reach the cluster: "auto" (in-cluster when running in a pod, else
# kubeconfig), "in-cluster" or "kubeconfig". K8S_API_HOST, when set, wins over
# both (a `kubectl proxy` URL, or the test API server).
K8S_CONFIG_MODE = env_str("K8S_CONFIG_MODE", "auto")
K8S_KUBECONFIG = env_str("K8S_KUBECONFIG")
K8S_CONTEXT = env_str("K8S_CONTEXT")
K8S_API_HOST = env_str("K8S_API_HOST")
K8S_NAMESPACE = env_str("K8S_NAMESPACE", "default")
# Labels this installation's Jobs, so two installations can share a namespace.
K8S_INSTANCE = env_str("K8S_INSTANCE", "orchestrator")
K8S_REQUEST_TIMEOUT_SECONDS = env_float("K8S_REQUEST_TIMEOUT_SECONDS", 10.0)
# What every run's pod gets besides its spec.
K8S_ORCHESTRATOR_URL = env_str("K8S_ORCHESTRATOR_URL", "http://orchestrator:7070")
K8S_SERVICE_ACCOUNT = env_str("K8S_SERVICE_ACCOUNT")
K8S_IMAGE_PULL_SECRETS = env_list("K8S_IMAGE_PULL_SECRETS")
# A run's priority (0..9) to the PriorityClass its Job's pod gets, e.g.
# "9=urgent,8=urgent,0=batch"; a priority not listed sets none (the cluster's
# default). Unset: priority orders nothing in the cluster.
K8S_PRIORITY_CLASSES = env_int_map("K8S_PRIORITY_CLASSES", lowest=0, highest=9)
K8S_TTL_SECONDS_AFTER_FINISHED = env_int("K8S_TTL_SECONDS_AFTER_FINISHED", 3600, minimum=-1)
K8S_POD_TEMPLATE_OVERLAY = env_str("K8S_POD_TEMPLATE_OVERLAY")  # JSON object
K8S_POD_TEMPLATE_OVERLAY_FILE = env_str("K8S_POD_TEMPLATE_OVERLAY_FILE")  # JSON or YAML file
# The reconciler (`manage.py k8s_reconcile`).
K8S_WATCH_TIMEOUT_SECONDS = env_int("K8S_WATCH_TIMEOUT_SECONDS", 300, minimum=1)
K8S_RESYNC_SECONDS = env_float("K8S_RESYNC_SECONDS", 300.0)
K8S_ORPHAN_GRACE_SECONDS = env_float("K8S_ORPHAN_GRACE_SECONDS", 120.0)
RECONCILER_METRICS_PORT = env_int("RECONCILER_METRICS_PORT", 0, minimum=0)

# --- Security and observability: API keys, CORS, rate limits, metrics, logs ---
# What each setting protects is in SECURITY.md.

# One key, or several comma-separated so a new one can be rolled out before
# the old one is withdrawn. Unset: no authentication (a warning at start-up).
ORCHESTRATOR_API_KEYS = env_list("ORCHESTRATOR_API_KEY")
METRICS_REQUIRE_AUTH = env_bool("METRICS_REQUIRE_AUTH", False)

CORS_ALLOWED_ORIGINS = env_list("CORS_ORIGINS")
CORS_ALLOW_ALL_ORIGINS = not CORS_ALLOWED_ORIGINS
# The API authenticates with headers, never cookies, so no origin gets credentials.
CORS_ALLOW_CREDENTIALS = False
CORS_URLS_REGEX = r"^/(?!admin/).*$"
CORS_ALLOW_HEADERS = (
    "accept",
    "authorization",
    "content-type",
    "x-api-key",
    "idempotency-key",
    "last-event-id",
    "x-request-id",
    "x-actor-id",
)
CORS_EXPOSE_HEADERS = ("Location", "X-Request-ID", "Retry-After")

RATE_LIMIT_WINDOW_MS = env_int("RATE_LIMIT_WINDOW_MS", 60_000, minimum=1)
RATE_LIMIT_MAX = env_int("RATE_LIMIT_MAX", 120, minimum=0)  # 0: no limit
RATE_LIMIT_WORKER_MAX = env_int("RATE_LIMIT_WORKER_MAX", 1200, minimum=0)
# After the rate-limit cache fails, the limiter stands aside this long.
RATE_LIMIT_CACHE_BACKOFF_SECONDS = env_float("RATE_LIMIT_CACHE_BACKOFF_SECONDS", 5.0)
RATELIMIT_USE_CACHE = "default"
# A cache outage must not refuse every request; the limiter then lets them through.
RATELIMIT_FAIL_OPEN = True
CACHES = {
    "default": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "orchestrator"),
            "OPTIONS": {
                # One pool per process, shared by every request's cache object.
                "pool_class": "orchestrator.cache.SharedConnectionPool",
                "socket_timeout": 1.0,
                "socket_connect_timeout": 1.0,
            },
        }
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "orchestrator"}
    )
}

# --- Redis workers ---
# Redis-mode runs go on a Redis Stream read by `manage.py runworker`. With
# REDIS_URL unset the API still serves (and /ready does not check Redis):
# dispatch tries the local default below, and when that fails the run is kept
# `pending` until a worker's sweep sends it. Keys and channels all start with
# REDIS_KEY_PREFIX, so several deployments (or test runs) can share one Redis.
REDIS_DEFAULT_URL = "redis://127.0.0.1:6379/0"
REDIS_KEY_PREFIX = env_str("REDIS_KEY_PREFIX", "orchestrator:")
REDIS_RUN_STREAM = env_str("REDIS_RUN_STREAM", "runs")
REDIS_CONSUMER_GROUP = env_str("REDIS_CONSUMER_GROUP", "workers")
# Workers take the highest priority first, but every Nth run the fleet takes
# is the one that has waited longest, whatever its priority, so that urgent
# work never starves the rest for ever (runs.redis.queue). At least 2.
REDIS_QUEUE_OLDEST_EVERY = env_int("REDIS_QUEUE_OLDEST_EVERY", 10, minimum=2)
REDIS_SOCKET_TIMEOUT_SECONDS = env_float("REDIS_SOCKET_TIMEOUT_SECONDS", 2.0)
# After a failed dispatch, later dispatches skip Redis for this long (the sweep
# sends those runs), so an outage does not slow every POST /runs.
REDIS_DISPATCH_BACKOFF_SECONDS = env_float("REDIS_DISPATCH_BACKOFF_SECONDS", 5.0)
WORKER_CONCURRENCY = env_int("WORKER_CONCURRENCY", 2, minimum=1)
WORKER_LEASE_SECONDS = env_float("WORKER_LEASE_SECONDS", 15.0)
WORKER_DEFAULT_MAX_ATTEMPTS = env_int("WORKER_DEFAULT_MAX_ATTEMPTS", 3, minimum=1)
WORKER_KILL_GRACE_SECONDS = env_float("WORKER_KILL_GRACE_SECONDS", 10.0)
WORKER_SHUTDOWN_GRACE_SECONDS = env_float("WORKER_SHUTDOWN_GRACE_SECONDS", 25.0)
WORKER_SWEEP_INTERVAL_SECONDS = env_float("WORKER_SWEEP_INTERVAL_SECONDS", 30.0)
WORKER_TASK_MODULES = env_list("WORKER_TASK_MODULES", "")
# How long a worker's fleet record (runs_workers, the admin dashboard) outlives
# its last heartbeat: a crashed worker shows as gone for this long.
WORKER_RECORD_KEEP_SECONDS = env_int("WORKER_RECORD_KEEP_SECONDS", 3600, minimum=60)
WORKER_METRICS_PORT = env_int("WORKER_METRICS_PORT", 0, minimum=0)
# The built-in `command` task runs any argv a client sends, as the worker's
# user: only on workers started with WORKER_ALLOW_COMMAND=true.
WORKER_ALLOW_COMMAND = env_bool("WORKER_ALLOW_COMMAND", False)
# How long a worker retries a checkpoint write that failed on the database
# (each retry carries the same keys, so nothing is stored twice).
WORKER_WRITE_RETRY_SECONDS = env_float("WORKER_WRITE_RETRY_SECONDS", 30.0)
WORKER_COMMAND_PASS_ENV = env_list("WORKER_COMMAND_PASS_ENV", "PATH,HOME,LANG,LC_ALL,TZ")

# --- Event stream (runs.stream) ---
# Keep-alive comment interval while a stream is idle; `retry:` sent first.
SSE_KEEPALIVE_SECONDS = env_float("SSE_KEEPALIVE_SECONDS", 15.0)
SSE_RETRY_MS = env_int("SSE_RETRY_MS", 2000, minimum=0)
SSE_DEFAULT_REPLAY = env_int("SSE_DEFAULT_REPLAY", 10, minimum=0)
# How often every followed run is re-read without a wake-up; negative means
# automatic: off on PostgreSQL (LISTEN wakes), 1 s elsewhere (SQLite).
SSE_POLL_SECONDS = env_float("SSE_POLL_SECONDS", -1.0)
# Checkpoints read per query, and stream reads in flight at once per process
# (each borrows a pooled connection for milliseconds).
SSE_BATCH_SIZE = env_int("SSE_BATCH_SIZE", 500, minimum=1)
SSE_DB_CONCURRENCY = env_int("SSE_DB_CONCURRENCY", 2, minimum=1)
# Frames queued for one slow client before its stream is closed (it resumes).
SSE_MAX_BUFFERED_EVENTS = env_int("SSE_MAX_BUFFERED_EVENTS", 5000, minimum=10)
SSE_LISTEN_MAX_BACKOFF_SECONDS = env_float("SSE_LISTEN_MAX_BACKOFF_SECONDS", 5.0)

# The run journal (GET /runs/events, webhooks): how long entries are kept.
# `runs_prune` deletes older ones; a resume from before them gets `event: reset`.
JOURNAL_RETENTION = env_duration("JOURNAL_RETENTION", "7d")


# --- Operations: admin static files ---
# ServeStatic (orchestrator.middleware.static_files) serves the admin's CSS and scripts
# from the app server itself.
# The image collects them at build time; where collectstatic has not run
# (`make run`, the test suite) they are served straight from the apps.
SERVESTATIC_USE_FINDERS = True
ADMIN_CHECKPOINTS_PER_PAGE = env_int("ADMIN_CHECKPOINTS_PER_PAGE", 50, minimum=1)


# --- Webhooks (the webhooks app; `manage.py runwebhooks` delivers) ---
# Signs per-run webhooks (the `webhook` of POST /runs): whsec_ and base64 of
# 24 to 64 random bytes. Unset: a per-run webhook is refused (422). Several,
# comma-separated, all sign each attempt, so the server's secret can be rotated
# without a receiver rejecting anything (the guide on webhooks says how).
WEBHOOK_SECRET = env_str("WEBHOOK_SECRET")
# After POST /webhooks/{id}/rotate-secret the old secret keeps signing beside
# the new one for this long, unless the request asks for another overlap.
WEBHOOK_SECRET_OVERLAP_SECONDS = env_int("WEBHOOK_SECRET_OVERLAP_SECONDS", 86400, minimum=0)
# Each phase of an attempt (connect, send, each read) gets this long.
WEBHOOK_TIMEOUT_SECONDS = env_float("WEBHOOK_TIMEOUT_SECONDS", 10.0)
# Seconds to wait after each failed attempt (comma list); past its end a
# delivery is failed. Default: exponential, about a day in all, each delay
# jittered by up to WEBHOOK_RETRY_JITTER either way.
WEBHOOK_RETRY_SCHEDULE = env_str("WEBHOOK_RETRY_SCHEDULE", "15,60,300,900,1800,3600,7200,14400,28800,28800")
WEBHOOK_RETRY_JITTER = env_float("WEBHOOK_RETRY_JITTER", 0.2)
# Loopback, private, link-local, multicast and reserved targets are refused
# unless this is true (a receiver inside your own network).
WEBHOOK_ALLOW_PRIVATE_NETWORKS = env_bool("WEBHOOK_ALLOW_PRIVATE_NETWORKS", False)
# Attempts in flight at once per deliverer, and how long a claimed attempt
# stays claimed before another deliverer may take it over (a dead deliverer's).
WEBHOOK_CONCURRENCY = env_int("WEBHOOK_CONCURRENCY", 16, minimum=1)
WEBHOOK_CLAIM_SECONDS = env_float("WEBHOOK_CLAIM_SECONDS", 60.0)
# How often an idle deliverer looks for new journal entries and due retries.
WEBHOOK_POLL_SECONDS = env_float("WEBHOOK_POLL_SECONDS", 1.0)
WEBHOOK_METRICS_PORT = env_int("WEBHOOK_METRICS_PORT", 0, minimum=0)

# --- Scheduling and delayed runs (schedules, runs.admission) ---
# `manage.py runscheduler` sleeps until the next tick or delayed run is due and
# is woken by a NOTIFY when either changes; this bounds one sleep all the same.
SCHEDULER_MAX_SLEEP_SECONDS = env_float("SCHEDULER_MAX_SLEEP_SECONDS", 60.0)
SCHEDULER_METRICS_PORT = env_int("SCHEDULER_METRICS_PORT", 0, minimum=0)
# How old the newest due tick may be and still count as on time rather than
# missed (missed ticks follow the schedule's `catchup`).
SCHEDULE_GRACE_SECONDS = env_float("SCHEDULE_GRACE_SECONDS", 30.0)
# How far ahead of its tick the run of an `overlap: allow` schedule (Redis,
# no admission fields) is made, held by its runAt until the tick, so that
# ticks that fall together only need their hand-over at the tick; 0: never.
SCHEDULE_PREPARE_SECONDS = env_float("SCHEDULE_PREPARE_SECONDS", 10.0)
# Most missed ticks one schedule makes runs for under `catchup: all`.
SCHEDULE_MAX_CATCHUP = env_int("SCHEDULE_MAX_CATCHUP", 100, minimum=1)
# A due delayed run whose backend cannot take it (Kubernetes down) is tried again this much later.
ADMISSION_RETRY_SECONDS = env_float("ADMISSION_RETRY_SECONDS", 5.0)
