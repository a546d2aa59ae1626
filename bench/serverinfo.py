"""Prints, as one JSON line, how `manage.py serve` would serve in this environment."""

import json
import os


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.conf import settings

    from server.wsgi_servers import server_options

    options = server_options()
    database = settings.DATABASES["default"]
    described = {key: options.get(key) for key in ("server", "workers", "threads")}
    described["front"] = settings.WEB_FRONT
    described["CONN_MAX_AGE"] = database.get("CONN_MAX_AGE")
    described["pool"] = database.get("OPTIONS", {}).get("pool")
    print(json.dumps(described, default=str))
