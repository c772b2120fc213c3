"""Project settings, read from the environment.

In development the environment is completed from `.env`; real environment
variables always win. `.env.example` documents every variable.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP
{%- if cookiecutter.use_hybrid_middleware %}
from pythonjsonlogger.core import RESERVED_ATTRS
{%- endif %}
{%- if cookiecutter.use_channels and cookiecutter.broker == "redis" %}
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
{%- endif %}

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
env.read_env(env.str("DJANGO_ENV_FILE", default=str(BASE_DIR / ".env")))

DEBUG = env.bool("DJANGO_DEBUG", default=False)

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set; it is required when DJANGO_DEBUG is off. "
            'Generate one with: python -c "import secrets; print(secrets.token_urlsafe(50))"'
        )
    SECRET_KEY = "django-insecure-development-only-key"  # noqa: S105 (DEBUG only)

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
# A failed CSRF check answers 403 JSON to API clients, like the other errors (core/errors.py).
CSRF_FAILURE_VIEW = "core.errors.csrf_failure"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # Before servestatic and staticfiles, so that its `runserver` is the one
    # run: it serves the ASGI application (core/management/commands/runserver.py).
    "core",
    "servestatic",
    "django.contrib.staticfiles",
{%- if cookiecutter.use_async_views %}
    "ninja",
{%- endif %}
{%- if cookiecutter.use_hybrid_middleware %}
    "request_context",
{%- endif %}
{%- if cookiecutter.use_async_views %}
    "articles",
    "files",
{%- endif %}
{%- if cookiecutter.use_sse %}
    "events",
{%- endif %}
{%- if cookiecutter.use_channels %}
    "rooms",
{%- endif %}
{%- if cookiecutter.use_httpx %}
    "upstreams",
{%- endif %}
{%- if cookiecutter.use_tasks %}
    "django_tasks_db",
    "tasks",
{%- endif %}
]

# Django's stock middleware in async-native form (core/middleware.py): an async
# view pays no thread hop for them.
MIDDLEWARE = [
{%- if cookiecutter.use_hybrid_middleware %}
    # First, so its id and timing cover everything below it.
    "request_context.middleware.RequestContextMiddleware",
{%- endif %}
    "core.middleware.SecurityMiddleware",
    # Serves /static/ under ASGI without a thread per file (core/static.py).
    "core.static.ServeStaticMiddleware",
    "core.middleware.SessionMiddleware",
    "core.middleware.CommonMiddleware",
    "core.middleware.CsrfViewMiddleware",
    "core.middleware.AuthenticationMiddleware",
    "core.middleware.MessageMiddleware",
    "core.middleware.XFrameOptionsMiddleware",
    "core.middleware.ContentSecurityPolicyMiddleware",
    "core.middleware.DatabaseErrorMiddleware",
]

# Threads that run the sync code of requests (ORM calls, sync views). 0: a thread
# per request, as Django's own handler does. N: at most N threads shared by every
# request of a process, as few as keep up (core/asgi.py: SyncThreads).
REQUEST_THREADS = env.int("REQUEST_THREADS", default=0)

# DJANGO_STOCK_CLASSES=true serves with Django's own ASGI handler and middleware
# classes in place of the project's async-native subclasses (core/asgi.py,
# core/middleware.py): to compare the two, or to rule the project's out.
DJANGO_STOCK_CLASSES = env.bool("DJANGO_STOCK_CLASSES", default=False)
if DJANGO_STOCK_CLASSES:
    # Each class of core.middleware subclasses the Django class of the same name.
    _django_classes = {
        f"core.middleware.{name}": f"{module}.{name}"
        for name, module in {
            "SecurityMiddleware": "django.middleware.security",
            "SessionMiddleware": "django.contrib.sessions.middleware",
            "CommonMiddleware": "django.middleware.common",
            "CsrfViewMiddleware": "django.middleware.csrf",
            "AuthenticationMiddleware": "django.contrib.auth.middleware",
            "MessageMiddleware": "django.contrib.messages.middleware",
            "XFrameOptionsMiddleware": "django.middleware.clickjacking",
            "ContentSecurityPolicyMiddleware": "django.middleware.csp",
        }.items()
    }
    MIDDLEWARE = [_django_classes.get(path, path) for path in MIDDLEWARE]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

{%- if cookiecutter.database == "postgresql" %}

# The role and the database the README's recipe creates, both named after the
# project; .env adds the password the template generated (README: Run it).
_name = "{{ cookiecutter.project_slug }}"
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"postgres://{_name}@127.0.0.1:5432/{_name}"),
}
{%- else %}

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
{%- endif %}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets readers run while one connection writes.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        # Take the write lock when a transaction starts, so two transactions never both
        # read and then fail to upgrade to a write lock; wait up to `timeout` seconds for it.
        "transaction_mode": "IMMEDIATE",
        "timeout": env.float("DATABASE_SQLITE_TIMEOUT", default=20.0),
    }
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # With a thread per request (REQUEST_THREADS=0) persistent per-thread
    # connections (CONN_MAX_AGE > 0) pile up; a per-process pool does not.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # A connection is checked before use, so after a database restart no
    # request gets a dead one.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"]["OPTIONS"] = {
        "connect_timeout": env.int("DATABASE_CONNECT_TIMEOUT", default=5),
        "pool": {
            "min_size": env.int("DATABASE_POOL_MIN_SIZE", default=2),
            "max_size": env.int("DATABASE_POOL_MAX_SIZE", default=10),
            "timeout": env.float("DATABASE_POOL_TIMEOUT", default=10.0),
        },
    }
{%- if cookiecutter.database == "postgresql" %}
    # Django's backend, failing at once while the server is known to be down
    # and serving again within a probe interval of its return (core/postgresql/).
    DATABASES["default"]["ENGINE"] = "core.postgresql"
    # It checks each pooled connection itself; the pool's check would retry
    # dead ones with a backoff of seconds.
    DATABASES["default"]["OPTIONS"]["pool"]["check"] = None
    # Seconds between two connection attempts while the server is down.
    DATABASE_PROBE_INTERVAL = env.float("DATABASE_PROBE_INTERVAL", default=0.5)
{%- endif %}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "core.User"
AUTHENTICATION_BACKENDS = [
    # Django's ModelBackend, refusing passwords from a locked-out client (core/login_throttle.py).
    "core.login_throttle.ThrottledModelBackend",
    "core.auth.ApiTokenBackend",
]
# LOGIN_FAILURE_LIMIT failed password logins of one username from one client address
# within LOGIN_LOCKOUT_SECONDS lock that pair out for LOGIN_LOCKOUT_SECONDS.
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
LOGIN_LOCKOUT_SECONDS = env.int("LOGIN_LOCKOUT_SECONDS", default=15 * 60)
# The admin's path; another than the well-known default keeps it out of most scans.
ADMIN_URL_PATH = env.str("ADMIN_URL_PATH", default="admin/")
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"django.contrib.auth.password_validation.{name}"}
    for name in (
        "UserAttributeSimilarityValidator",
        "MinimumLengthValidator",
        "CommonPasswordValidator",
        "NumericPasswordValidator",
    )
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # In development static files are served from the apps; with DEBUG off, run
    # `manage.py collectstatic` first: files get content-hashed, compressed names.
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "servestatic.storage.CompressedManifestStaticFilesStorage"
    },
}
MEDIA_URL = "files/"
MEDIA_ROOT = Path(env.str("DJANGO_MEDIA_ROOT", default=str(BASE_DIR / "media")))

# Largest request body, in bytes, unless the view sets its own (core/limits.py):
# the ASGI handler answers 413 past it, without reading or storing the rest.
REQUEST_MAX_BODY_BYTES = env.int("REQUEST_MAX_BODY_BYTES", default=1024 * 1024)
{%- if cookiecutter.use_async_views %}

# Every paginated API list (articles/pagination.py): `page` and `page_size` are
# bounded so that no request makes the database skip more than MAX_OFFSET rows.
NINJA_PAGINATION_CLASS = "articles.pagination.PageNumberPagination"
NINJA_PAGINATION_PER_PAGE = 20
NINJA_MAX_PER_PAGE_SIZE = 100
NINJA_PAGINATION_MAX_OFFSET = 10_000

# Largest body the API accepts (413 above, at the ASGI edge: core/limits.py).
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=256 * 1024)
# /api/docs and /api/openapi.json for everyone; off, only signed-in staff see them (404 otherwise).
API_DOCS = env.bool("API_DOCS", default=DEBUG)
{%- endif %}

# Security. With DEBUG off every HTTPS protection is on unless switched off
# explicitly; `manage.py check --deploy` then reports nothing.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
# Load balancers probe over plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=not DEBUG)
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "img-src": [CSP.SELF, "data:"],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
}

{%- if cookiecutter | uses_redis %}

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
# Shared by every worker and host, so the login throttle (core/login_throttle.py) counts
# a client's failures wherever they land.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "{{ cookiecutter.project_slug }}",
    }
}
{%- endif %}
{%- if cookiecutter.use_sse %}

# Server-Sent Events (events/): GET /events/ streams, POST /events/publish/ publishes.
{%- if cookiecutter.broker == "redis" %}
# One Redis Stream shared by every process.
SSE_BROKER = "events.redis_broker.RedisBroker"
SSE_STREAM_KEY = env.str(
    "SSE_STREAM_KEY",
    default="{{ cookiecutter.project_slug }}:events",
)
{%- else %}
# In-process: every worker has its own events; use Redis for several workers.
SSE_BROKER = "events.broker.MemoryBroker"
{%- endif %}
# How many recent events a reconnecting client can catch up on.
SSE_RETENTION = env.int("SSE_RETENTION", default=1000)
SSE_HEARTBEAT_SECONDS = env.float("SSE_HEARTBEAT_SECONDS", default=15.0)
SSE_RETRY_MILLISECONDS = env.int("SSE_RETRY_MILLISECONDS", default=3000)
# Events a client may fall behind before it is dropped (it then resumes).
SSE_CLIENT_QUEUE_SIZE = env.int("SSE_CLIENT_QUEUE_SIZE", default=256)
SSE_MAX_DATA_BYTES = env.int("SSE_MAX_DATA_BYTES", default=64 * 1024)
{%- endif %}
{%- if cookiecutter.use_channels %}

# Websockets (rooms/): the channel layer carries room messages between consumers.
{%- if cookiecutter.broker == "redis" %}
CHANNEL_LAYERS = {
    "default": {
        # channels_redis' layer with a pool that waits for a free connection (rooms/layers.py).
        "BACKEND": "rooms.layers.RedisChannelLayer",
        "CONFIG": {
            "hosts": [
                {
                    "address": REDIS_URL,
                    # redis-py's async connections never retry by default: after a
                    # Redis restart every connection kept in the pool would fail once.
                    "retry": Retry(ExponentialBackoff(1.0, 0.05), 3),
                    # Per process; a command waits up to `timeout` seconds for one.
                    "max_connections": 50,
                    "timeout": 10,
                }
            ]
        },
    },
}
{%- else %}
# In-process: clients connected to different workers never meet; use Redis for several.
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
{%- endif %}
ROOMS_MAX_MESSAGE_LENGTH = env.int("ROOMS_MAX_MESSAGE_LENGTH", default=2000)
# Frames one connection may send per window; past that it is told and closed.
ROOMS_RATE_LIMIT = env.int("ROOMS_RATE_LIMIT", default=20)
ROOMS_RATE_WINDOW_SECONDS = env.float("ROOMS_RATE_WINDOW_SECONDS", default=10.0)
{%- endif %}
{%- if cookiecutter.use_httpx %}

# Outbound HTTP (upstreams/): one pooled httpx client per process.
HTTPX_CONNECT_TIMEOUT = env.float("HTTPX_CONNECT_TIMEOUT", default=2.0)
HTTPX_READ_TIMEOUT = env.float("HTTPX_READ_TIMEOUT", default=5.0)
HTTPX_WRITE_TIMEOUT = env.float("HTTPX_WRITE_TIMEOUT", default=5.0)
# Seconds a request waits for a free connection when all are busy.
HTTPX_POOL_TIMEOUT = env.float("HTTPX_POOL_TIMEOUT", default=2.0)
HTTPX_MAX_CONNECTIONS = env.int("HTTPX_MAX_CONNECTIONS", default=100)
HTTPX_MAX_KEEPALIVE_CONNECTIONS = env.int("HTTPX_MAX_KEEPALIVE_CONNECTIONS", default=20)
# Attempts for idempotent requests that failed to connect, timed out or got 502/503/504.
HTTPX_RETRY_ATTEMPTS = env.int("HTTPX_RETRY_ATTEMPTS", default=3)
HTTPX_RETRY_WAIT_INITIAL = env.float("HTTPX_RETRY_WAIT_INITIAL", default=0.1)
# Largest response body read, decompressed, in bytes; past it: ResponseTooLarge.
HTTPX_MAX_RESPONSE_BYTES = env.int("HTTPX_MAX_RESPONSE_BYTES", default=4 * 1024 * 1024)
# GET /api/dashboard/: name=url,name=url, fetched at once within DASHBOARD_TIMEOUT seconds.
# A url may be a path, called on this server at the port the request came in on.
DASHBOARD_SOURCES = env.str("DASHBOARD_SOURCES", default="self=/healthz")
DASHBOARD_CONCURRENCY = env.int("DASHBOARD_CONCURRENCY", default=10)
DASHBOARD_TIMEOUT = env.float("DASHBOARD_TIMEOUT", default=2.0)
# Seconds a round's result answers later requests; concurrent requests always share a round.
DASHBOARD_CACHE_SECONDS = env.float("DASHBOARD_CACHE_SECONDS", default=5.0)
{%- endif %}

# GET /readyz runs every check concurrently, each bounded by READINESS_TIMEOUT seconds.
READINESS_CHECKS = {
    "database": "core.readiness.database",
{%- if cookiecutter.use_sse and cookiecutter.broker == "redis" %}
    "redis": "events.redis_broker.check",
{%- endif %}
{%- if cookiecutter.use_channels and cookiecutter.broker == "redis" %}
    "channel_layer": "rooms.readiness.channel_layer",
{%- endif %}
{%- if cookiecutter.use_tasks %}
    # A worker recorded a heartbeat within TASKS_WORKER_LOST_SECONDS (advisory, below).
    "tasks_worker": "tasks.readiness.worker",
{%- endif %}
}
READINESS_TIMEOUT = env.float("READINESS_TIMEOUT", default=3.0)
# Reported by /readyz, but never a reason for 503: this process serves without them.
{%- if cookiecutter.use_tasks %}
READINESS_ADVISORY = ["tasks_worker"]
{%- else %}
READINESS_ADVISORY = []
{%- endif %}
{%- if cookiecutter.use_tasks %}

# Background tasks (tasks/): Django's Tasks framework on django-tasks-db's database
# backend. `enqueue` writes a row, in the caller's transaction; `manage.py worker` runs them.
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
# Tasks one worker process runs at once (async tasks on its event loop, sync ones on threads).
TASKS_WORKER_CONCURRENCY = env.int("TASKS_WORKER_CONCURRENCY", default=50)
# Seconds an idle worker waits before it looks for new tasks again.
TASKS_WORKER_INTERVAL = env.float("TASKS_WORKER_INTERVAL", default=0.5)
# Every TASKS_HEARTBEAT_SECONDS a worker records that it is alive; a worker unseen for
# TASKS_WORKER_LOST_SECONDS is lost (killed, or its host gone), and another worker puts its
# running tasks back in the queue, or marks them failed after TASKS_MAX_ATTEMPTS attempts.
TASKS_HEARTBEAT_SECONDS = env.float("TASKS_HEARTBEAT_SECONDS", default=5.0)
TASKS_WORKER_LOST_SECONDS = env.float("TASKS_WORKER_LOST_SECONDS", default=60.0)
TASKS_MAX_ATTEMPTS = env.int("TASKS_MAX_ATTEMPTS", default=3)
# On SIGTERM running tasks get this long to finish; the rest go back in the queue.
TASKS_SHUTDOWN_GRACE_SECONDS = env.float("TASKS_SHUTDOWN_GRACE_SECONDS", default=20.0)
# Finished tasks' results are deleted after this many days (by the worker, hourly).
TASKS_RESULT_RETENTION_DAYS = env.int("TASKS_RESULT_RETENTION_DAYS", default=7)
# The example task (tasks/tasks.py) runs these checks one at a time, reporting progress.
TASKS_SURVEY_CHECKS = {
    name: path for name, path in READINESS_CHECKS.items() if name != "tasks_worker"
}
{%- if cookiecutter.use_httpx %}
# ... and calls every DASHBOARD_SOURCES entry through the shared client; a path
# source (self=/healthz) is called on this service at DASHBOARD_SELF_URL.
TASKS_SURVEY_CHECKS["upstreams"] = "tasks.upstreams.sources_answer"
DASHBOARD_SELF_URL = env.str("DASHBOARD_SELF_URL", default="http://127.0.0.1:8000")
{%- endif %}
{%- if cookiecutter.use_sse %}
# A task's progress reaches /events/ as `task.progress` events:
{%- if cookiecutter.broker == "redis" %}
# the worker publishes them itself, through Redis.
TASKS_PROGRESS_EVENTS = "worker"
{%- else %}
# the web process that enqueued the task relays what the worker records in the
# database (the memory broker cannot carry them from the worker's process).
TASKS_PROGRESS_EVENTS = "relay"
{%- endif %}
{%- endif %}
{%- if cookiecutter.use_httpx or (cookiecutter.use_sse and cookiecutter.broker == "redis") %}
# What the worker's tasks opened on its event loop, closed when it stops (as the web
# server closes them at its shutdown).
TASKS_WORKER_CLOSE = [
{%- if cookiecutter.use_httpx %}
    "upstreams.client.aclose_client",
{%- endif %}
{%- if cookiecutter.use_sse and cookiecutter.broker == "redis" %}
    "events.broker.aclose_broker",  # its Redis connections
{%- endif %}
]
{%- endif %}
{%- endif %}

# Django's reports of a client's mistake (django.security.*) log at WARNING,
# never ERROR (core/log.py).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
{%- if cookiecutter.use_hybrid_middleware %}
    "filters": {
        "client_faults": {"()": "core.log.ClientFaultsAtWarning"},
        "request_id": {"()": "request_context.log.RequestIdFilter"},
    },
    "formatters": {
        "plain": {"format": "{asctime} {levelname} [{request_id}] {name}: {message}", "style": "{"},
        # One JSON object per line, for log shippers.
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            # Not a field: uvicorn's copy of its message with terminal colours.
            "reserved_attrs": [*RESERVED_ATTRS, "color_message"],
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain" if DEBUG else "json",
            "filters": ["client_faults", "request_id"],
        },
    },
{%- else %}
    "filters": {
        "client_faults": {"()": "core.log.ClientFaultsAtWarning"},
    },
    "formatters": {
        "plain": {"format": "{asctime} {levelname} {name}: {message}", "style": "{"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["client_faults"],
        },
    },
{%- endif %}
    "root": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", default="INFO")},
    # uvicorn's own lines (startup, errors, one access line per request) in the
    # same format as the project's, in every worker: uvicorn configures them
    # before it loads the application, which then replaces their handlers.
    # No level here: uvicorn's --log-level still decides.
    "loggers": {
        name: {"handlers": ["console"], "propagate": False}
        for name in ("uvicorn", "uvicorn.access")
    },
}
