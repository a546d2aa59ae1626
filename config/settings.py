"""The one settings module. Every value comes from the environment; see README's table.

Production behaviour is the default. With no database configured, the project runs its own
PostgreSQL in DATA_DIR and keeps a generated secret key there: nothing to configure locally.
"""

import warnings
from pathlib import Path

from config import env

BASE_DIR = Path(__file__).resolve().parent.parent

# -- Where local state lives (embedded PostgreSQL, generated secret key) ----------------------
DATA_DIR = Path(env.get_str("DATA_DIR") or BASE_DIR / ".data").resolve()

# -- Database --------------------------------------------------------------------------------
CONFIGURED_DATABASE = env.database_from_environment()
EMBEDDED_DATABASE = CONFIGURED_DATABASE is None

if EMBEDDED_DATABASE:
    from ops.embedded_postgres import for_data_dir

    _server = for_data_dir(DATA_DIR, tcp_port=env.get_int("EMBEDDED_PG_PORT", 0) or None)
    _database = {
        "ENGINE": "ops.embedded_db",
        "EMBEDDED_DATA_DIR": str(DATA_DIR),
        **_server.connection_settings(),
        "OPTIONS": {},
    }
else:
    _database = {"ENGINE": "django.db.backends.postgresql", **CONFIGURED_DATABASE}

# Persistent connections, checked before reuse, so a restarted database costs one failed
# request at most. Requests are short; one connection per server thread.
_database["CONN_MAX_AGE"] = env.get_int("DB_CONN_MAX_AGE", 600)
_database["CONN_HEALTH_CHECKS"] = True
_database["OPTIONS"].setdefault("connect_timeout", 5)
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
if HTTPS and env.get_bool("DJANGO_BEHIND_PROXY", True):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# Request size limits: a body over this is refused with 413 before it is parsed.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.get_int("MAX_REQUEST_BYTES", 1024 * 1024)

# -- Applications ------------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "accounts",
    "notes",
    "ops",
]

MIDDLEWARE = [
    "ops.middleware.HealthProbeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

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
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Serve straight from the apps when collectstatic has not run (the local command).
WHITENOISE_USE_FINDERS = True
warnings.filterwarnings("ignore", message="No directory at")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# -- The API -----------------------------------------------------------------------------------
API_TOKEN_LIFETIME_SECONDS = env.get_int("API_TOKEN_LIFETIME_SECONDS", 30 * 24 * 3600)

# -- Serving -----------------------------------------------------------------------------------
PORT = env.get_int("PORT", 3003)
LISTEN_HOST = env.get_str("LISTEN_HOST", "127.0.0.1")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.get_str("LOG_LEVEL", "INFO")},
}
