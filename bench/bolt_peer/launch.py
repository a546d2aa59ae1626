"""How the benchmark runs the django-bolt peer: its environment and its server."""

import os
import sys
from importlib.metadata import version
from pathlib import Path

from bench.processes import Server, peer_environment

# django-bolt's README, for deployment: `runbolt --processes` as many as there are cores, each
# process one Actix worker and one Python event loop.
PROCESSES = os.cpu_count() or 1


def environment(data_dir: Path, database: dict) -> dict:
    return peer_environment(data_dir, database, "bench.bolt_peer.settings")


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
