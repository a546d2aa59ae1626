"""The load: wrk and its dataset against the HTTP servers, pgbench against PostgreSQL."""

import json
import os
import shutil
import subprocess
from pathlib import Path

from bench.errors import BenchError
from bench.scenarios import SCENARIOS

LUA_DIR = Path(__file__).resolve().parent / "wrk"
PGBENCH_DATABASE = "pgbench"


# -- wrk ---------------------------------------------------------------------------------------


def require_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchError(
            "wrk (the HTTP load generator) is not installed. Install it: "
            "`apt-get install wrk` (Debian/Ubuntu) or `brew install wrk` (macOS), then run again."
        )
    return wrk


def write_dataset(path: Path, owners, words: list[str]) -> None:
    """The Lua table the wrk scripts load: each user's token and id range, the search words."""
    users = ",\n".join(
        f'  {{token = "{o.token}", first = {o.first_id}, last = {o.last_id}}}' for o in owners
    )
    quoted = ", ".join(f'"{word}"' for word in words)
    path.write_text(f"return {{\nusers = {{\n{users}\n}},\nwords = {{{quoted}}}\n}}\n")


def run_wrk(
    wrk: str, url: str, scenario: str, connections: int, seconds: int, dataset: Path, threads: int
) -> dict:
    command = [
        wrk,
        f"--threads={min(threads, connections)}",
        f"--connections={connections}",
        f"--duration={seconds}s",
        "--timeout=5s",
        "--latency",
        f"--script={LUA_DIR / SCENARIOS[scenario]}",
        url,
    ]
    environ = {**os.environ, "BENCH_LUA_DIR": str(LUA_DIR), "BENCH_DATA": str(dataset)}
    done = subprocess.run(
        command, env=environ, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    return wrk_result(done.returncode, done.stdout, done.stderr)


def wrk_result(returncode: int, stdout: str, stderr: str) -> dict:
    """The numbers of one wrk run, from common.lua's BENCH_RESULT summary line."""
    line = next((line for line in stdout.splitlines() if line.startswith("BENCH_RESULT ")), None)
    if returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({returncode}):\n{stdout}\n{stderr}")
    raw = json.loads(line.removeprefix("BENCH_RESULT "))
    detail = {key: raw[key] for key in raw if key.endswith("_errors") or key == "timeouts"}
    return {
        "rps": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p90_ms": round(raw["p90_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "max_ms": round(raw["max_us"] / 1000, 2),
        "requests": raw["requests"],
        # Not one answer is a broken server, whatever wrk counted.
        "errors": sum(detail.values()) + (raw["requests"] == 0),
        "error_detail": detail,
    }


# -- pgbench -----------------------------------------------------------------------------------


def pgbench_prepare(scale: int, log: Path) -> tuple[list[str], dict[str, str]]:
    """Initialise pgbench's tables in a database of their own; the command's connection part
    and its environment (the password stays off the command line)."""
    from django.db import connection

    from pgembedded.programs import binaries

    where = connection.settings_dict
    target = ["-h", where["HOST"], "-p", str(where["PORT"]), "-U", where["USER"]]
    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {PGBENCH_DATABASE}")
        cursor.execute(f"CREATE DATABASE {PGBENCH_DATABASE}")
    environ = {**os.environ, "PGPASSWORD": where.get("PASSWORD") or ""}
    pgbench = str(binaries() / "pgbench")
    with open(log, "a") as output:
        subprocess.run(
            [pgbench, "-i", "-q", "-s", str(scale), *target, PGBENCH_DATABASE],
            env=environ,
            stdout=output,
            stderr=subprocess.STDOUT,
            check=True,
        )
    return [pgbench, *target], environ


def run_pgbench(
    command: list[str], environ: dict[str, str], connections: int, seconds: int, threads: int
) -> dict:
    done = subprocess.run(
        [
            *command,
            "--select-only",
            "--no-vacuum",
            f"--client={connections}",
            f"--jobs={min(threads, connections)}",
            f"--time={seconds}",
            PGBENCH_DATABASE,
        ],
        env=environ,
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"pgbench failed:\n{done.stdout}\n{done.stderr}")
    tps = latency = None
    for line in done.stdout.splitlines():
        if line.startswith("tps = "):
            tps = float(line.split()[2])
        elif line.startswith("latency average = "):
            latency = float(line.split()[3])
    return {"tps": tps, "latency_avg_ms": latency}
