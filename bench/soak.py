"""The soak mode: hours of a steady mixed load, below saturation, watching memory and connections.

`uv run python -m bench --soak MINUTES` starts the production server on a throwaway embedded
PostgreSQL, seeds notes, and runs bench/wrk/soak.lua (reads, list pages, searches, writes and
deletes, paced to about `--rate` requests/s) one interval at a time. At the end of each interval
it samples the memory (RSS and PSS) of the web workers, the task workers, the rest of `serve`
and PostgreSQL, PostgreSQL's client connections, and that interval's requests, errors and p99.
The report (report.json, report.md, chart.png in bench/results/<time>-soak/, copied to
bench/results/latest-soak/) gives each memory series' growth per hour from a linear fit.
"""

import argparse
import contextlib
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.circumstances import git_revision, load_average
from bench.errors import BenchError
from bench.load import LUA_DIR, require_wrk, write_dataset, wrk_result
from bench.phases import join_database, measure_in_scratch, publish, say
from bench.processes import Server, child_environment, environment_assignment, postgres_pid
from bench.soak_memory import describe_groups, sample_memory
from bench.soak_report import growth, write_reports

DEFAULT_RESULTS = Path(__file__).resolve().parent / "results"
SCRIPT = LUA_DIR / "soak.lua"
CLIENT_CONNECTIONS = """
    SELECT count(*) FROM pg_stat_activity
    WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
"""


def database_counts() -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(CLIENT_CONNECTIONS)
        clients = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM notes_note")
        notes = cursor.fetchone()[0]
    return {"postgres_client_connections": clients, "notes": notes}


# -- the load ----------------------------------------------------------------------------------


def pace_delay_ms(rate: float, connections: int) -> int:
    """The wait before each request that keeps `connections` near `rate` requests/s in all."""
    if rate <= 0 or connections < 1:
        raise BenchError(f"--rate ({rate}) and --connections ({connections}) must be positive")
    return max(0, round(connections * 1000 / rate))


def start_wrk(wrk: str, url: str, connections: int, seconds: int, dataset: Path, delay_ms: int):
    command = [
        wrk,
        f"--threads={connections}",  # one connection per thread: see soak.lua
        f"--connections={connections}",
        f"--duration={seconds}s",
        "--timeout=5s",
        "--latency",
        f"--script={SCRIPT}",
        url,
    ]
    environ = {
        **os.environ,
        "BENCH_LUA_DIR": str(LUA_DIR),
        "BENCH_DATA": str(dataset),
        "BENCH_SOAK_DELAY_MS": str(delay_ms),
    }
    return subprocess.Popen(
        command, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def soak(args, wrk: str, work: Path, out_dir: Path, servers: list[Server]) -> dict:
    data_dir = work / "data"
    production_environ = child_environment(data_dir, **args.production_env)
    production = Server(
        "production",
        [sys.executable, "manage.py", "serve"],
        production_environ,
        out_dir / "logs" / "production.log",
        "/readyz",
    )
    servers.append(production)
    say("Starting the production server (initdb, migrate, serve)")
    production.start()

    join_database(data_dir)
    from bench import seed

    say(f"Seeding {args.notes} notes for {args.users} users")
    owners, words = seed.seed(users=args.users, notes=args.notes)
    dataset = work / "dataset.lua"
    write_dataset(dataset, owners, words)

    delay_ms = pace_delay_ms(args.rate, args.connections)
    report: dict = {
        "meta": {
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "revision": git_revision(),
            "cpus": os.cpu_count(),
            "load_average_before": load_average(),
            "minutes": args.soak,
            "sample_seconds": args.sample_seconds,
            "connections": args.connections,
            "target_rate": args.rate,
            "delay_ms": delay_ms,
            "notes": args.notes,
            "users": args.users,
            "production_env": args.production_env,
        },
        "samples": [],
    }
    report["processes"] = describe_groups(production.process.pid, postgres_pid(data_dir))
    started = time.monotonic()
    deadline = started + args.soak * 60
    while (left := deadline - time.monotonic()) > 0.5:
        seconds = max(1, min(args.sample_seconds, round(left)))
        load = start_wrk(wrk, production.url, args.connections, seconds, dataset, delay_ms)
        # Sample near the interval's end, while the load still runs.
        with contextlib.suppress(subprocess.TimeoutExpired):
            load.wait(timeout=max(0.5, seconds - 1.5))
        sample = {
            "t_s": round(time.monotonic() - started, 1),
            "memory": sample_memory(production.process.pid, postgres_pid(data_dir)),
            **database_counts(),
            "load_average": load_average(),
        }
        stdout, stderr = load.communicate(timeout=seconds + 60)
        sample.update(wrk_result(load.returncode, stdout, stderr))
        report["samples"].append(sample)
        if production.process.poll() is not None:
            raise BenchError(f"the production server exited:\n{production.log_tail()}")
        say(
            f"{sample['t_s'] / 60:5.1f} min  {sample['rps']:6.1f} req/s  "
            f"p99 {sample['p99_ms']:6.1f} ms  errors {sample['errors']}  "
            + "  ".join(f"{name} {m['pss_mib']} MiB" for name, m in sample["memory"].items())
            + f"  pg connections {sample['postgres_client_connections']}"
        )
    report["meta"]["load_average_after"] = load_average()
    report["meta"]["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    report["growth"] = growth(report["samples"])
    report["errors"] = sum(sample["errors"] for sample in report["samples"])
    return report


# -- the command -------------------------------------------------------------------------------


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench --soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--soak", type=float, required=True, metavar="MINUTES", help="how long")
    parser.add_argument(
        "--sample-seconds", type=int, default=60, help="one sample per interval (60)"
    )
    parser.add_argument("--rate", type=float, default=150, help="about this many requests/s (150)")
    parser.add_argument("--connections", type=int, default=4, help="wrk connections (4)")
    parser.add_argument("--users", type=int, default=50, help="seeded users (50)")
    parser.add_argument("--notes", type=int, default=20_000, help="seeded notes in all (20,000)")
    parser.add_argument(
        "--production-env",
        action="append",
        default=[],
        type=environment_assignment,
        metavar="NAME=VALUE",
        help="environment for the server, e.g. WEB_FRONT=none; repeatable",
    )
    parser.add_argument(
        "--results", type=Path, default=DEFAULT_RESULTS, help="where reports go (bench/results)"
    )
    parser.add_argument("--keep-data", action="store_true", help="keep the database folder")
    args = parser.parse_args(argv)
    if args.soak <= 0 or args.sample_seconds < 2:
        parser.error("--soak wants a positive number of minutes, --sample-seconds at least 2")
    args.production_env = dict(args.production_env)
    return args


def main(argv: list[str]) -> int:
    args = parse_arguments(argv)
    try:
        wrk = require_wrk()
        pace_delay_ms(args.rate, args.connections)
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out_dir = args.results / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-soak")
    (out_dir / "logs").mkdir(parents=True, exist_ok=True)
    report = measure_in_scratch(
        lambda work, servers: soak(args, wrk, work, out_dir, servers),
        args.keep_data,
        "keepnotes-soak-",
    )
    if report is None:
        return 1
    for path in write_reports(report, out_dir):
        say(f"Wrote {path}")
    publish(out_dir, args.results / "latest-soak")
    print((out_dir / "report.md").read_text())
    return 0
