"""`manage.py` and `manage.py serve` as real processes, on a throwaway embedded PostgreSQL."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.processes import child_environment, free_port

__all__ = [
    "REPO",
    "SUPERUSER",
    "Server",
    "command_env",
    "free_port",
    "manage",
    "postgres_running_in",
]

REPO = Path(__file__).resolve().parents[2]
SUPERUSER = {"username": "founder", "password": "a-long-and-unguessable-passphrase"}


def wait_until(condition, what: str, *, timeout: float = 60, every: float = 0.2):
    """Call `condition` every `every` s until it returns something true, and return that; an
    AssertionError naming `what` once `timeout` s have gone by."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(every)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def command_env(data_dir: Path, **extra: str) -> dict:
    return child_environment(data_dir, **{"WEB_CONCURRENCY": "2", **extra})


def manage(
    data_dir: Path, *args: str, repo: Path = REPO, **extra: str
) -> subprocess.CompletedProcess:
    """`manage.py ARGS` in `repo` (this checkout, or a copy of it), on `data_dir`."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=repo,
        env=command_env(data_dir, **extra),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# What `serve` runs beside the web server, off in a test unless it asks (shipped=True, or the
# setting itself): each is one more Python process, and continuous backups take a base backup
# at every first start, about 3 and 2 CPU-seconds a start in all. The tests of those features
# (test_serve, test_pitr*, test_tasks, ...) run them as shipped.
SIDECARS_OFF = {"BACKUP_PROTECTION": "off", "TASK_WORKERS": "0"}


class Server:
    """`manage.py serve` in `repo`, on `data_dir`, waited for until /readyz answers."""

    def __init__(self, data_dir: Path, repo: Path = REPO, shipped: bool = False, **extra: str):
        self.port = free_port()
        self.log = data_dir.parent / f"serve-{self.port}.log"
        superuser = {
            "DJANGO_SUPERUSER_USERNAME": SUPERUSER["username"],
            "DJANGO_SUPERUSER_PASSWORD": SUPERUSER["password"],
        }
        sidecars = {} if shipped else SIDECARS_OFF
        environ = command_env(data_dir, PORT=str(self.port), **{**superuser, **sidecars, **extra})
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "serve"],
                cwd=repo,
                env=environ,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started = time.monotonic()
        self.ready_after = self.wait_ready()

    def request(self, method: str, path: str, body=None, token: str | None = None):
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (http only)
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def wait_ready(self, timeout: float = 90) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited early:\n{self.log.read_text()}")
            try:
                if self.request("GET", "/readyz")[0] == 200:
                    return time.monotonic() - self.started
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"serve never became ready:\n{self.log.read_text()}")

    def token(self) -> str | None:
        status, body = self.request("POST", "/api/v1/auth/token", SUPERUSER)
        return body["token"] if status == 201 else None

    def stop(self, signum: int = signal.SIGTERM) -> int:
        os.killpg(self.process.pid, signum)
        return self.process.wait(timeout=60)


def postgres_running_in(data_dir: Path) -> bool:
    found = subprocess.run(["pgrep", "-f", f"postgres -D {data_dir}"], capture_output=True)
    return found.returncode == 0
