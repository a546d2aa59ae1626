"""What a report says it was measured on: the code's revision, the machine's load, and each
server as it describes itself."""

import json
import subprocess
import sys
from pathlib import Path

from bench.bolt_peer import launch as bolt_peer
from bench.drf_peer import launch as drf_peer
from bench.processes import REPO


def describe_server(name: str, production_environ: dict) -> dict:
    if name == "runserver":
        return {"server": "django runserver (threaded)", "CONN_MAX_AGE": 0}
    if name == "drf":
        return drf_peer.describe()
    if name == "bolt":
        return bolt_peer.describe()
    done = subprocess.run(
        [sys.executable, "-c", "from bench.serverinfo import main; main()"],
        cwd=REPO,
        env=production_environ,
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        return {"error": done.stderr.strip()[-500:]}


def git_revision() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    )
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True)
    revision = done.stdout.strip() or "unknown"
    return revision + ("+changes" if dirty.stdout.strip() else "")


def load_average() -> list[float] | None:
    try:
        return [float(part) for part in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None
