"""Django settings for the Orchestrator, all read from environment variables.

Every setting is listed with its meaning in `.env.example` and
`docs/guides/operations.md`.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from orchestrator.env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set unless DEBUG=true")
    # Debug only: a key per process, so nothing signed survives a restart.
    SECRET_KEY = secrets.token_urlsafe(50)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "*")
PORT = env_int("PORT", 7070, minimum=1)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "runs",
]

MIDDLEWARE = [
    "orchestrator.middleware.RequestIDMiddleware",
    "orchestrator.middleware.BodySizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
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
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
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

STATIC_URL = "static/"
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
    "EXCEPTION_HANDLER": "runs.api.errors.exception_handler",
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
    ],
}

# Orchestrator behaviour.
ORCHESTRATOR_BACKENDS = {
    "redis": env_str("ORCHESTRATOR_REDIS_BACKEND", "runs.backends.base.NullBackend"),
    "k8s": env_str("ORCHESTRATOR_K8S_BACKEND", "runs.backends.base.NullBackend"),
}
PLAN_DEFAULT_TARGET = env_str("PLAN_DEFAULT_TARGET", "redis")
REDIS_URL = env_str("REDIS_URL")

LOG_FORMAT = env_str("LOG_FORMAT", "plain" if DEBUG else "json")
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "orchestrator.logging.RequestIDFilter"}},
    "formatters": {
        "json": {"()": "orchestrator.logging.JSONFormatter"},
        "plain": {"format": "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT if LOG_FORMAT in ("json", "plain") else "json",
            "filters": ["request_id"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "WARNING"},
    },
}

# Scoped run tokens (runs.tokens).
STREAM_TOKEN_TTL_SECONDS = env_int("STREAM_TOKEN_TTL_SECONDS", 300, minimum=10)
WORKER_TOKEN_TTL_SECONDS = env_int("WORKER_TOKEN_TTL_SECONDS", 7 * 24 * 3600, minimum=60)

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
SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"].append("runs.stream.openapi.add_event_stream")
