"""Running commands: run(), log(), the errors they raise, and the environment they get."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / ".data" / "container-tests"

PROXY_BUILD_ARGS = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
)
# The only variables a docker/compose subprocess inherits. Everything compose interpolates or
# passes through (POSTGRES_*, DJANGO_*, APP_*, COMPOSE_*) comes from the stack's env file
# (tests/support/container_stack.py), so a developer's shell or .env cannot change what is tested.
INHERITED_VARIABLES = {
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "USER",
    "LOGNAME",
    "XDG_RUNTIME_DIR",
    "DOCKER_HOST",
    "DOCKER_CONTEXT",
    "DOCKER_CONFIG",
    "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY",
    *PROXY_BUILD_ARGS,
}


class SandboxError(RuntimeError):
    """Something the sandbox needed to do failed."""


class Unavailable(SandboxError):
    """A prerequisite is missing on this machine (skipped locally, a failure in CI)."""


class CommandFailed(SandboxError):
    def __init__(self, command: list[str], result: subprocess.CompletedProcess[str]):
        self.result = result
        output = (result.stdout or "") + (result.stderr or "")
        tail = "\n".join(output.strip().splitlines()[-60:])
        super().__init__(f"{' '.join(map(str, command))} exited {result.returncode}:\n{tail}")


def log(message: str) -> None:
    """Progress lines: shown live with `pytest -s`, and kept in the run's log folder."""
    line = f"[containers {time.strftime('%H:%M:%S')}] {message}"
    print(line, flush=True)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    with (RESULTS_DIR / "harness.log").open("a") as stream:
        stream.write(line + "\n")


def run(
    command: list,
    *,
    env: dict[str, str] | None = None,
    timeout: float = 600,
    check: bool = True,
    log_file: Path | None = None,
    cwd: Path = REPO,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    command = [str(part) for part in command]
    try:
        result = subprocess.run(
            command,
            env=env,
            cwd=cwd,
            input=input_text,
            text=True,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise SandboxError(f"{' '.join(command)} did not finish within {timeout:.0f} s") from error
    if log_file:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("a") as stream:
            stream.write(f"$ {' '.join(command)}\n{result.stdout}{result.stderr}\n")
    if check and result.returncode != 0:
        raise CommandFailed(command, result)
    return result


def inherited_environment() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key in INHERITED_VARIABLES}
    path = env.get("PATH", "")
    for directory in ("/usr/local/sbin", "/usr/sbin", "/sbin"):  # dockerd, docker-proxy
        if directory not in path.split(":"):
            path = f"{path}:{directory}" if path else directory
    env["PATH"] = path
    return env


def is_root() -> bool:
    return os.geteuid() == 0


@contextlib.contextmanager
def sigterm_as_keyboard_interrupt() -> Iterator[None]:
    """A CI timeout sends SIGTERM: turn it into KeyboardInterrupt so clean-up still runs."""

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
