"""How the benchmark runs the django-bolt peer: its environment and its server."""

import os
import secrets
import sys
from importlib.metadata import version
from pathlib import Path

from bench.processes import Server, child_environment

# django-bolt's README, for deployment: `runbolt --processes` as many as there are cores, each
# process one Actix worker and one Python event loop.
PROCESSES = os.cpu_count() or 1


def environment(data_dir: Path, database: dict) -> dict:
    """The peer's environment: its settings, a throwaway secret key, the benchmark's database."""
    return child_environment(
        data_dir,
        DJANGO_SETTINGS_MODULE="bench.bolt_peer.settings",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        PGHOST=str(database["HOST"]),
        PGPORT=str(database["PORT"]),
        PGUSER=database["USER"],
        PGPASSWORD=database["PASSWORD"],
        PGDATABASE=database["NAME"],
    )


def server(environ: dict, log: Path) -> Server:
    peer = Server("bolt", [], environ, log, "/healthz")
    peer.command = [
        sys.executable,
        "manage.py",
        "runbolt",
        "--host=127.0.0.1",
        f"--port={peer.port}",
        f"--processes={PROCESSES}",
        "--no-admin",
    ]
    return peer


def describe() -> dict:
    return {
        "server": f"django-bolt {version('django-bolt')} runbolt (Actix)",
        "processes": PROCESSES,
        "workers": 1,
        "ORM": "async",
        "CONN_MAX_AGE": "kept (no request signals)",
    }
