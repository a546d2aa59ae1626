"""The django-bolt peer's settings: the least a django-bolt project needs, on the benchmark's
database (NAME from PGDATABASE; libpq reads PGHOST, PGPORT, PGUSER and PGPASSWORD itself).

`accounts` is installed for its `ApiToken` model: the peer checks tokens against the same rows,
hashed the same way, as the app does.
"""

import os

SECRET_KEY = os.environ["DJANGO_SECRET_KEY"]
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.postgres",
    "django_bolt",
    "accounts",
    "bench.bolt_peer",
]

# The one API runbolt serves; without it, runbolt would also import every installed app's
# `api` module (the app's django-ninja routers among them) looking for more.
BOLT_API = ["bench.bolt_peer.api:api"]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ["PGDATABASE"],
        # runbolt sends no request_started/request_finished, where Django would close a
        # connection: each process keeps the one its async ORM thread opened, whatever this says.
        "CONN_MAX_AGE": None,
    }
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
