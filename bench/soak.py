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
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from statistics import linear_regression

from bench.errors import BenchError
from bench.load import LUA_DIR, require_wrk, write_dataset
from bench.phases import git_revision, leave_database, load_average, say
from bench.processes import Server, child_environment, postgres_pid, process_tree

DEFAULT_RESULTS = Path(__file__).resolve().parent / "results"
SCRIPT = LUA_DIR / "soak.lua"
GROUPS = {
    "web_workers": "web workers",
    "task_workers": "task workers",
    "serve": "serve itself and its other children",
    "postgres": "PostgreSQL (all its processes)",
    "app": "the app in all (web + task + serve)",
}
APP_GROUPS = ("web_workers", "task_workers", "serve")
CLIENT_CONNECTIONS = """
    SELECT count(*) FROM pg_stat_activity
    WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
"""


# -- sampling ----------------------------------------------------------------------------------


def memory_of_processes(pids: list[int]) -> dict:
    """RSS and PSS (shared pages split among their users) of these processes, in MiB."""
    rss = pss = counted = 0
    for pid in pids:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:  # gone meanwhile
            continue
        counted += 1
        for line in rollup.splitlines():
            if line.startswith("Rss:"):
                rss += int(line.split()[1])
            elif line.startswith("Pss:"):
                pss += int(line.split()[1])
    return {"processes": counted, "rss_mib": round(rss / 1024, 1), "pss_mib": round(pss / 1024, 1)}


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def parent_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def process_groups(serve_pid: int, database_pid: int | None) -> dict[str, list[int]]:
    """`serve`'s processes by role: web workers (its forks), task workers, the rest; and
    PostgreSQL's (the postmaster's tree, wherever it was started from)."""
    database = set(process_tree(database_pid)) if database_pid else set()
    groups: dict[str, list[int]] = {name: [] for name in APP_GROUPS}
    groups["postgres"] = sorted(database)
    serve_command = command_line(serve_pid)
    task_trees: set[int] = set()
    for pid in process_tree(serve_pid):
        if pid in database or pid in task_trees:
            continue
        command = command_line(pid)
        if " task_worker" in command:
            tree = set(process_tree(pid))
            task_trees |= tree
            groups["task_workers"] += sorted(tree)
        elif pid != serve_pid and parent_of(pid) == serve_pid and command == serve_command:
            groups["web_workers"].append(pid)  # gunicorn's forks keep serve's command line
        else:
            groups["serve"].append(pid)
    return groups


def sample_memory(serve_pid: int, database_pid: int | None) -> dict[str, dict]:
    """Each group's memory, and the app's in all: a worker's PSS rises as the pages it shares
    with serve are copied on write, while serve's falls; their sum is what the app costs."""
    groups = process_groups(serve_pid, database_pid)
    groups["app"] = [pid for name in APP_GROUPS for pid in groups[name]]
    return {name: memory_of_processes(pids) for name, pids in groups.items()}


def describe_groups(serve_pid: int, database_pid: int | None) -> dict[str, list[str]]:
    """What runs in each group (command lines, shortened), for the report."""
    groups = process_groups(serve_pid, database_pid)

    def short(pid: int) -> str:
        program, _, rest = command_line(pid).partition(" ")
        return f"{Path(program).name} {rest}".strip()[:80]

    return {name: [short(pid) for pid in pids] for name, pids in groups.items()}


def growth_per_hour(seconds: list[float], values: list[float]) -> float | None:
    """The slope of a least-squares line through (seconds, values), per hour; None if < 2."""
    if len(seconds) < 2 or len(set(seconds)) < 2:
        return None
    slope, _ = linear_regression(seconds, values)
    return round(slope * 3600, 2)


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


def interval_result(returncode: int, stdout: str, stderr: str) -> dict:
    """One interval's numbers from soak.lua's summary line (common.lua's BENCH_RESULT)."""
    line = next((line for line in stdout.splitlines() if line.startswith("BENCH_RESULT ")), None)
    if returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({returncode}):\n{stdout}\n{stderr}")
    raw = json.loads(line.removeprefix("BENCH_RESULT "))
    detail = {key: raw[key] for key in raw if key.endswith("_errors") or key == "timeouts"}
    return {
        "requests": raw["requests"],
        "rps": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "max_ms": round(raw["max_us"] / 1000, 2),
        # Not one answer in an interval is a broken server, whatever wrk counted.
        "errors": sum(detail.values()) + (raw["requests"] == 0),
        "error_detail": detail,
    }


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

    for name in [key for key in os.environ if key.startswith(("DJANGO_", "DB_", "DATABASE_URL"))]:
        del os.environ[name]
    os.environ.update(child_environment(data_dir))
    import django

    django.setup()
    from django.db import connection

    from bench import seed

    connection.ensure_connection()  # joins the running embedded PostgreSQL
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
        sample.update(interval_result(load.returncode, stdout, stderr))
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


def growth(samples: list[dict]) -> dict:
    """MiB per hour of each memory series: over the whole run, and over its second half (after
    caches and PostgreSQL's shared buffers have warmed up)."""
    found = {}
    second_half = samples[len(samples) // 2 :]
    for name in GROUPS:
        for metric in ("rss_mib", "pss_mib"):
            found[f"{name}.{metric}"] = {
                "first": samples[0]["memory"][name][metric] if samples else None,
                "last": samples[-1]["memory"][name][metric] if samples else None,
                "per_hour": growth_per_hour(
                    [s["t_s"] for s in samples], [s["memory"][name][metric] for s in samples]
                ),
                "per_hour_second_half": growth_per_hour(
                    [s["t_s"] for s in second_half],
                    [s["memory"][name][metric] for s in second_half],
                ),
            }
    found["postgres_client_connections"] = {
        "first": samples[0]["postgres_client_connections"] if samples else None,
        "last": samples[-1]["postgres_client_connections"] if samples else None,
        "max": max((s["postgres_client_connections"] for s in samples), default=None),
    }
    return found


# -- the report --------------------------------------------------------------------------------


def markdown(report: dict) -> str:
    meta, samples = report["meta"], report["samples"]
    requests = sum(sample["requests"] for sample in samples)
    p99s = sorted(sample["p99_ms"] for sample in samples)
    lines = [
        "# keepnotes soak",
        "",
        f"{meta['started']} to {meta['finished']}, revision {meta['revision']}, "
        f"{meta['cpus']} CPUs; load average before {meta['load_average_before']}, after "
        f"{meta['load_average_after']}.",
        f"{meta['minutes']} min of soak.lua (50% read, 20% list, 15% search, 15% write, each "
        f"write deleted next) on {meta['connections']} connections paced to about "
        f"{meta['target_rate']} req/s ({meta['delay_ms']} ms between requests per connection), "
        f"{meta['notes']:,} notes of {meta['users']} users; a sample every "
        f"{meta['sample_seconds']} s.",
        "",
        f"- requests: {requests:,}; errors: **{report['errors']}**",
        f"- p99 per interval: median {p99s[len(p99s) // 2] if p99s else 0} ms, "
        f"worst {p99s[-1] if p99s else 0} ms",
        "- PostgreSQL client connections: first {first}, last {last}, max {max}".format(
            **report["growth"]["postgres_client_connections"]
        ),
        "",
        "## Memory growth (MiB per hour, least-squares line)",
        "",
        "| processes | metric | first | last | per hour | per hour, second half |",
        "|---|---|--:|--:|--:|--:|",
    ]
    for name, label in GROUPS.items():
        for metric in ("pss_mib", "rss_mib"):
            found = report["growth"][f"{name}.{metric}"]
            lines.append(
                f"| {label} | {metric.split('_')[0].upper()} | {found['first']} | {found['last']} "
                f"| {found['per_hour']} | {found['per_hour_second_half']} |"
            )
    lines += [
        "",
        "## Samples",
        "",
        "| min | req/s | p99 ms | errors | web PSS | task PSS | serve PSS | PostgreSQL PSS "
        "| PG conns | notes | load avg |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for sample in samples:
        memory = sample["memory"]
        lines.append(
            f"| {sample['t_s'] / 60:.1f} | {sample['rps']} | {sample['p99_ms']} "
            f"| {sample['errors']} | {memory['web_workers']['pss_mib']} "
            f"| {memory['task_workers']['pss_mib']} | {memory['serve']['pss_mib']} "
            f"| {memory['postgres']['pss_mib']} | {sample['postgres_client_connections']} "
            f"| {sample['notes']} | {sample['load_average']} |"
        )
    lines.append("")
    return "\n".join(lines)


def chart(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = report["samples"]
    minutes = [sample["t_s"] / 60 for sample in samples]
    figure, (pss_axis, rss_axis, latency_axis) = plt.subplots(3, 1, figsize=(10, 10), sharex=True)
    for axis, metric in ((pss_axis, "pss_mib"), (rss_axis, "rss_mib")):
        for name in GROUPS:
            values = [sample["memory"][name][metric] for sample in samples]
            axis.plot(minutes, values, marker=".", label=name)
        axis.set_ylabel("MiB")
        axis.set_title(f"{metric[:3].upper()} by group", fontsize=10)
        axis.legend(fontsize=7, ncol=5, loc="upper left")
        axis.grid(alpha=0.3)
        axis.margins(y=0.2)
    latency_axis.plot(minutes, [s["p99_ms"] for s in samples], marker=".", label="p99 ms")
    latency_axis.set_yscale("log")
    latency_axis.set_ylabel("p99, ms (log scale)")
    counts_axis = latency_axis.twinx()
    counts_axis.plot(minutes, [s["errors"] for s in samples], "x", color="#c0392b", label="errors")
    counts_axis.plot(
        minutes,
        [s["postgres_client_connections"] for s in samples],
        color="#27ae60",
        label="PostgreSQL client connections",
    )
    counts_axis.set_ylabel("count")
    counts_axis.set_ylim(bottom=0)
    latency_axis.legend(fontsize=7, loc="upper left")
    counts_axis.legend(fontsize=7, loc="upper right")
    latency_axis.set_xlabel("minutes")
    latency_axis.grid(alpha=0.3)
    meta = report["meta"]
    figure.suptitle(
        f"keepnotes soak: {meta['minutes']:g} min at up to {meta['target_rate']:g} req/s, "
        f"{report['errors']} errors",
        fontsize=11,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_reports(report: dict, out_dir: Path) -> list[Path]:
    paths = [out_dir / "report.json", out_dir / "report.md", out_dir / "chart.png"]
    paths[0].write_text(json.dumps(report, indent=2) + "\n")
    paths[1].write_text(markdown(report))
    chart(report, paths[2])
    return paths


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
        metavar="NAME=VALUE",
        help="environment for the server, e.g. WEB_SERVER=granian; repeatable",
    )
    parser.add_argument(
        "--results", type=Path, default=DEFAULT_RESULTS, help="where reports go (bench/results)"
    )
    parser.add_argument("--keep-data", action="store_true", help="keep the database folder")
    args = parser.parse_args(argv)
    if args.soak <= 0 or args.sample_seconds < 2:
        parser.error("--soak wants a positive number of minutes, --sample-seconds at least 2")
    environ = {}
    for item in args.production_env:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--production-env wants NAME=VALUE, not {item!r}")
        environ[name] = value
    args.production_env = environ
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
    work = Path(tempfile.mkdtemp(prefix="keepnotes-soak-"))
    servers: list[Server] = []
    try:
        report = soak(args, wrk, work, out_dir, servers)
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        for server in servers:
            server.stop()
        leave_database()
        if args.keep_data:
            say(f"Database folder kept: {work / 'data'}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    for path in write_reports(report, out_dir):
        say(f"Wrote {path}")
    latest = args.results / "latest-soak"
    shutil.rmtree(latest, ignore_errors=True)
    shutil.copytree(out_dir, latest, ignore=shutil.ignore_patterns("logs"))
    print((out_dir / "report.md").read_text())
    return 0
