"""Settings for Experiment Portal, read from the environment (see .env.example).

With no environment at all this is the embedded default: SQLite and a file-system Celery
broker under var/, the embedded Management API on the same server, a generated SECRET_KEY.
"""

from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from portal.env import (
    env_bool,
    env_float,
    env_int,
    env_list,
    env_str,
    env_url,
    secret_from_file,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("PORTAL_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", True)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set in the environment when DEBUG is off")
    SECRET_KEY = secret_from_file(VAR_DIR / "secret_key")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "axes",
    "management_api",
    "experiments_app",
    "experiments_app.audit",
    "experiments_app.bulk",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "experiments_app.middleware.HtmxMessagesMiddleware",
    "experiments_app.middleware.UpstreamRetryBudgetMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
ASGI_APPLICATION = "portal.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "experiments_app.context_processors.portal",
            ],
        },
    },
]

# --- Database --------------------------------------------------------------------------
DATABASE_URL = env_url(
    "DATABASE_URL",
    f"sqlite:///{VAR_DIR / 'portal.sqlite3'}",
    schemes={"sqlite", "postgres", "postgresql", "pgsql"},
)
try:
    _database = dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not a usable database URL: {exc}") from None
if _database["ENGINE"] == "django.db.backends.sqlite3":
    # The web server, the worker and beat write to one file: wait for locks instead of failing,
    # and let readers go on while one process writes.
    _database["CONN_MAX_AGE"] = 0
    _database["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis, cache ----------------------------------------------------------------------
REDIS_URL = env_url("REDIS_URL", "", schemes={"redis", "rediss", "unix"}) or None
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    # Files, not process memory: the web server, the worker and beat must see one cache (a push
    # by the worker drops the read cache the web server uses).
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                          "LOCATION": str(VAR_DIR / "cache")}}

# --- Celery ----------------------------------------------------------------------------
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env_url(
    "CELERY_BROKER_URL", "filesystem://", schemes={"filesystem", "redis", "rediss", "amqp", "memory"}
)
if CELERY_BROKER_URL.startswith("filesystem://"):
    for _folder in ("queue", "processed", "control"):
        (BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.05,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE: dict = {
    "expire-change-requests": {"task": "experiments_app.tasks.expire_change_requests", "schedule": 300.0},
}

# --- Audit history (experiments_app.audit) ---------------------------------------------
AUDIT_DRIFT_SECONDS = env_float("AUDIT_DRIFT_SECONDS", 60.0, minimum=1.0)
AUDIT_WEBHOOK_URL = env_url("AUDIT_WEBHOOK_URL", "", schemes={"http", "https"})
AUDIT_WEBHOOK_SECRET = env_str("AUDIT_WEBHOOK_SECRET")
# Seals each entry (an HMAC) so rows inserted out of band are told apart; defaults to SECRET_KEY.
# Set it, and keep it, if SECRET_KEY may ever be rotated: old entries are verified with it.
AUDIT_SEAL_KEY = env_str("AUDIT_SEAL_KEY")
# The upstream's createdBy for versions made with the portal's own key (`create_api_key portal`):
# the drift check does not call those external.
AUDIT_PORTAL_CREATED_BY = env_list("AUDIT_PORTAL_CREATED_BY", ["portal"])
AUDIT_DRIFT_SWEEP_SECONDS = env_float("AUDIT_DRIFT_SWEEP_SECONDS", 3600.0, minimum=0.0)
CELERY_BEAT_SCHEDULE["audit-process-outbox"] = {"task": "audit.process_outbox", "schedule": 60.0}
CELERY_BEAT_SCHEDULE["audit-detect-drift"] = {"task": "audit.detect_drift", "schedule": AUDIT_DRIFT_SECONDS}

# --- The upstream Management API -------------------------------------------------------
PORT = env_int("PORT", 8000, minimum=1)
UPSTREAM_BASE_URL = env_url("UPSTREAM_BASE_URL", f"http://127.0.0.1:{PORT}", schemes={"http", "https"}).rstrip("/")
UPSTREAM_API_KEY_FILE = VAR_DIR / "upstream_api_key"
UPSTREAM_API_KEY = env_str("UPSTREAM_API_KEY") or (
    UPSTREAM_API_KEY_FILE.read_text().strip() if UPSTREAM_API_KEY_FILE.exists() else ""
)
UPSTREAM_PROJECT_ID = env_str("UPSTREAM_PROJECT_ID", "100001")
UPSTREAM_CONNECT_TIMEOUT = env_float("UPSTREAM_CONNECT_TIMEOUT", 3.05, minimum=0.1)
UPSTREAM_READ_TIMEOUT = env_float("UPSTREAM_READ_TIMEOUT", 15.0, minimum=0.1)
UPSTREAM_MAX_RETRY_SECONDS = env_float("UPSTREAM_MAX_RETRY_SECONDS", 30.0, minimum=0.0)
UPSTREAM_WEB_RETRY_SECONDS = env_float("UPSTREAM_WEB_RETRY_SECONDS", 5.0, minimum=0.0)
UPSTREAM_RATE_PER_SECOND = env_float("UPSTREAM_RATE_PER_SECOND", 90.0, minimum=0.0)
UPSTREAM_DAILY_QUOTA = env_int("UPSTREAM_DAILY_QUOTA", 100_000)

# --- The embedded Management API (management_api) --------------------------------------
MANAGEMENT_API_RATE_PER_SECOND = env_int("MANAGEMENT_API_RATE_PER_SECOND", 100)
MANAGEMENT_API_RATE_PER_DAY = env_int("MANAGEMENT_API_RATE_PER_DAY", 100_000)
MANAGEMENT_API_FAULTS = env_str("MANAGEMENT_API_FAULTS")
MANAGEMENT_API_PUBLIC_URL = env_str("MANAGEMENT_API_PUBLIC_URL", "http://experiment.localhost")

# --- Change requests -------------------------------------------------------------------
CHANGE_REQUEST_EXPIRY_DAYS = env_int("CHANGE_REQUEST_EXPIRY_DAYS", 7, minimum=1)
PORTAL_BASE_URL = env_str("PORTAL_BASE_URL", f"http://127.0.0.1:{PORT}").rstrip("/")

# --- Bulk inclusion jobs (experiments_app.bulk) ---------------------------------------
BULK_MAX_IDS = env_int("BULK_MAX_IDS", 50_000, minimum=1)
BULK_SMALL_MAX_IDS = env_int("BULK_SMALL_MAX_IDS", 50, minimum=0)
BULK_ADD_CHUNK_SIZE = env_int("BULK_ADD_CHUNK_SIZE", 100, minimum=1)
BULK_WORKER_THREADS = env_int("BULK_WORKER_THREADS", 4, minimum=1)
# A job whose worker stopped renewing its lease this long ago is queued again (beat checks every
# 15 s, so a killed worker's job is picked up again within 45 s).
BULK_STALE_SECONDS = env_float("BULK_STALE_SECONDS", 30.0, minimum=1.0)
BULK_TRANSIENT_RETRIES = env_int("BULK_TRANSIENT_RETRIES", 5, minimum=0)
CELERY_BEAT_SCHEDULE["bulk-requeue-stale"] = {"task": "experiments_app.bulk.tasks.requeue_stale_bulk_jobs",
                                              "schedule": 15.0}
BULK_DRAFT_MAX_AGE_HOURS = env_float("BULK_DRAFT_MAX_AGE_HOURS", 24.0, minimum=0.01)
CELERY_BEAT_SCHEDULE["bulk-discard-drafts"] = {"task": "experiments_app.bulk.tasks.discard_old_bulk_drafts",
                                               "schedule": 3600.0}

# --- Auth ------------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"

# --- Security --------------------------------------------------------------------------
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
    "base-uri": [CSP.SELF],
    "object-src": [CSP.NONE],
}
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# --- Mail ------------------------------------------------------------------------------
if DEBUG:
    MAILERS = {"default": {"BACKEND": env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")}}
else:
    MAILERS = {
        "default": {
            "BACKEND": env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend"),
            "OPTIONS": {
                "host": env_str("EMAIL_HOST", "localhost"),
                "port": env_int("EMAIL_PORT", 587, minimum=1),
                "username": env_str("EMAIL_HOST_USER") or None,
                "password": env_str("EMAIL_HOST_PASSWORD") or None,
                "use_tls": env_bool("EMAIL_USE_TLS", True),
            },
        }
    }
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "experiment-portal@localhost")

# --- Static, i18n ----------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# --- Logging: one line a record; secrets never reach it (the gateway redacts keys) ------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL; got {LOG_LEVEL!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "experiments_app": {"level": LOG_LEVEL},
        "management_api": {"level": LOG_LEVEL},
        "portal": {"level": LOG_LEVEL},
    },
}
