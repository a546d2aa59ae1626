"""How the benchmark runs the DRF peer: its environment, its DRF tokens, its server."""

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from bench.errors import BenchError
from bench.processes import REPO, Server, peer_environment

# cookiecutter-django 2026.8.18: compose/production/django/start ends in
# `exec gunicorn config.wsgi --bind 0.0.0.0:5000 --chdir=/app` (gunicorn's default sync
# workers), and .envs/.production/.django sets WEB_CONCURRENCY=4, which gunicorn reads.
WORKERS = 4
CONN_MAX_AGE = 60  # its config/settings/production.py's default


def environment(data_dir: Path, database: dict) -> dict:
    return peer_environment(
        data_dir,
        database,
        "bench.drf_peer.settings",
        WEB_CONCURRENCY=str(WORKERS),
        CONN_MAX_AGE=str(CONN_MAX_AGE),
    )


def server(environ: dict, log: Path) -> Server:
    peer = Server("drf", [], environ, log, "/healthz")
    peer.command = [
        sys.executable,
        "-m",
        "gunicorn",
        "bench.drf_peer.wsgi",
        f"--bind=127.0.0.1:{peer.port}",
    ]
    return peer


def tokens(environ: dict, user_ids: list[int]) -> dict[int, str]:
    """A DRF token for each user (DRF's table migrated first): user id to key."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.drf_peer.prepare", *map(str, user_ids)],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"the DRF peer's tokens could not be made:\n{done.stderr[-3000:]}")
    keys = json.loads(done.stdout.strip().splitlines()[-1])
    return {int(user_id): key for user_id, key in keys.items()}


def describe() -> dict:
    return {
        "server": f"gunicorn {version('gunicorn')} (sync)",
        "workers": WORKERS,
        "DRF": version("djangorestframework"),
        "CONN_MAX_AGE": CONN_MAX_AGE,
        "ATOMIC_REQUESTS": True,
    }
