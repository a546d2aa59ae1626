"""The processes under test: ports, environments, servers, and what their process trees use."""

import argparse
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import BenchError

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def environment_assignment(text: str) -> tuple[str, str]:
    """`--production-env NAME=VALUE`, as argparse reads it (`type=`; `dict()` of the list)."""
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"wants NAME=VALUE, not {text!r}")
    return name, value


def child_environment(data_dir: Path, **extra: str) -> dict:
    """This environment without database or Django settings of its own, plus `extra`."""
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DB_", "DATABASE_URL"))
    }
    return {
        **environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATA_DIR": str(data_dir),
        "ACCESS_LOG": "false",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def peer_environment(data_dir: Path, database: dict, settings_module: str, **extra: str) -> dict:
    """A peer's environment: its settings, a throwaway secret key, the benchmark's database
    (libpq's PG* variables, which the peers' settings read)."""
    return child_environment(
        data_dir,
        DJANGO_SETTINGS_MODULE=settings_module,
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        PGHOST=str(database["HOST"]),
        PGPORT=str(database["PORT"]),
        PGUSER=database["USER"],
        PGPASSWORD=database["PASSWORD"],
        PGDATABASE=database["NAME"],
        **extra,
    )


@dataclass
class Server:
    """One configuration under test: a process group serving HTTP on a loopback port."""

    name: str
    command: list[str]
    environ: dict
    log_path: Path
    ready_path: str
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    ready_after: float = 0.0
    launched_at: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120) -> float:
        """Start it; the seconds until it answered its readiness path."""
        self.launch()
        return self.wait_ready(timeout)

    def launch(self) -> None:
        """Start it without waiting: servers that boot side by side are ready sooner."""
        self.launched_at = time.monotonic()
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=REPO,
                env={**self.environ, "PORT": str(self.port)},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 120) -> float:
        """The seconds from launch() until it answered its readiness path."""
        started = self.launched_at
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"{self.name} exited during start-up:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + self.ready_path, timeout=2) as answer:  # noqa: S310
                    if answer.status == 200:
                        self.ready_after = time.monotonic() - started
                        return self.ready_after
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.01)
        raise BenchError(f"{self.name} was not ready within {timeout:g} s:\n{self.log_tail()}")

    def stop(self) -> float:
        if self.process is None or self.process.poll() is not None:
            return 0.0
        started = time.monotonic()
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        return time.monotonic() - started

    def owns(self, pid: int | None) -> bool:
        """Whether `pid` runs under this server (the embedded PostgreSQL it started does)."""
        return self.process is not None and pid in process_tree(self.process.pid)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def postgres_pid(data_dir: Path) -> int | None:
    """The embedded PostgreSQL's postmaster, from its pid file in `data_dir`."""
    try:
        return int((data_dir / "postgres" / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(parent, []).append(int(entry.name))
    return tree


def process_tree(pid: int) -> list[int]:
    tree, found, todo = _children(), [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(tree.get(current, []))
    return found


def cpu_seconds(pid: int | None) -> float:
    """CPU time used by a process tree so far, counting its children that have exited."""
    if pid is None or not Path("/proc").is_dir():
        return 0.0
    ticks = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime, stime, then (for exited, waited-for children) cutime, cstime
        ticks += sum(int(value) for value in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def memory_of(pid: int | None, leave_out: int | None = None) -> dict | None:
    """Resident (RSS) and proportional (PSS: shared pages split) memory of a process tree, MiB."""
    if pid is None or not Path("/proc").is_dir():
        return None
    rss = pss = 0
    left_out = set(process_tree(leave_out)) if leave_out else set()
    pids = [member for member in process_tree(pid) if member not in left_out]
    for member in pids:
        try:
            rollup = Path(f"/proc/{member}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in rollup.splitlines():
            if line.startswith("Rss:"):
                rss += int(line.split()[1])
            elif line.startswith("Pss:"):
                pss += int(line.split()[1])
    return {
        "processes": len(pids),
        "rss_mib": round(rss / 1024, 1),
        "pss_mib": round(pss / 1024, 1),
    }
