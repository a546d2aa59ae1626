"""The load benchmark: production vs the tutorial's runserver vs a raw WSGI handler, same run.

`uv run python -m bench` (full: 100,000 notes, 100 users, 10 s per scenario, 8 and 32
connections, 3 repetitions) or `uv run python -m bench --quick` (CI: seconds, not minutes).
Everything runs on this machine against one throwaway embedded PostgreSQL 18: the report says
how the configurations compare, which is what matters on a shared, noisy machine.
"""

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
LUA_DIR = BENCH / "wrk"
DEFAULT_RESULTS = BENCH / "results"

SCENARIOS = {
    "read-one": "read_one.lua",
    "list-page": "list_page.lua",
    "search": "search.lua",
    "write": "write.lua",
}
CONFIGS = {
    "production": "production: manage.py serve",
    "runserver": "tutorial: runserver, CONN_MAX_AGE=0",
    "raw": "limit: raw WSGI + psycopg, same server",
}
# What the issue asks of production, as (scenario, reference, least ratio).
RATIO_TARGETS = [
    ("read-one", "runserver", 12.0),
    ("read-one", "raw", 0.5),
    ("list-page", "runserver", 6.0),
    ("write", "runserver", 6.0),
]
P99_TARGET_MS = 50.0
P99_TARGET_SCENARIOS = ("read-one", "write")
P99_TARGET_CONNECTIONS = 32
WARM_RESTART_TARGET_S = 2.0


class BenchError(RuntimeError):
    """The benchmark cannot go on; the message says why."""


# -- Processes ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120) -> float:
        """Start it; the seconds until it answered its readiness path."""
        started = time.monotonic()
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


# -- Load --------------------------------------------------------------------------------------


def require_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchError(
            "wrk (the HTTP load generator) is not installed. Install it: "
            "`apt-get install wrk` (Debian/Ubuntu) or `brew install wrk` (macOS), then run again."
        )
    return wrk


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
    line = next(
        (line for line in done.stdout.splitlines() if line.startswith("BENCH_RESULT ")), None
    )
    if done.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    raw = json.loads(line.removeprefix("BENCH_RESULT "))
    errors = sum(raw[key] for key in raw if key.endswith("_errors") or key == "timeouts")
    if raw["requests"] == 0:
        errors += 1  # not one answer: a broken server, whatever wrk counted
    return {
        "rps": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p90_ms": round(raw["p90_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "max_ms": round(raw["max_us"] / 1000, 2),
        "requests": raw["requests"],
        "errors": errors,
        "error_detail": {k: raw[k] for k in raw if k.endswith("_errors") or k == "timeouts"},
    }


def write_dataset(path: Path, owners, words: list[str]) -> None:
    """The Lua table the wrk scripts load: each user's token and id range, the search words."""
    users = ",\n".join(
        f'  {{token = "{o.token}", first = {o.first_id}, last = {o.last_id}}}' for o in owners
    )
    quoted = ", ".join(f'"{word}"' for word in words)
    path.write_text(f"return {{\nusers = {{\n{users}\n}},\nwords = {{{quoted}}}\n}}\n")


# -- pgbench -----------------------------------------------------------------------------------

PGBENCH_DATABASE = "pgbench"


def pgbench_prepare(scale: int, log: Path) -> list[str]:
    """Initialise pgbench's tables in a database of their own; the command's connection part."""
    from django.db import connection

    from ops.embedded_postgres import binaries

    where = connection.settings_dict
    target = ["-h", where["HOST"], "-p", str(where["PORT"]), "-U", where["USER"]]
    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {PGBENCH_DATABASE}")
        cursor.execute(f"CREATE DATABASE {PGBENCH_DATABASE}")
    pgbench = str(binaries() / "pgbench")
    with open(log, "a") as output:
        subprocess.run(
            [pgbench, "-i", "-q", "-s", str(scale), *target, PGBENCH_DATABASE],
            stdout=output,
            stderr=subprocess.STDOUT,
            check=True,
        )
    return [pgbench, *target]


def run_pgbench(command: list[str], connections: int, seconds: int, threads: int) -> dict:
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


# -- The run -----------------------------------------------------------------------------------


@dataclass
class Plan:
    users: int
    notes: int
    seconds: int
    warmup_seconds: int
    connections: list[int]
    repetitions: int
    pgbench_seconds: int
    pgbench_scale: int
    wrk_threads: int
    production_env: dict[str, str]
    variants: dict[str, dict[str, str]]
    quick: bool


def parse_arguments(argv: list[str] | None) -> tuple[Plan, Path, bool]:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny and short: CI's smoke run")
    parser.add_argument("--users", type=int)
    parser.add_argument("--notes", type=int, help="notes in all (shared out among the users)")
    parser.add_argument("--seconds", type=int, help="load per scenario and configuration")
    parser.add_argument("--connections", help="comma-separated concurrency levels, e.g. 8,32")
    parser.add_argument("--repetitions", type=int, help="runs of everything; medians reported")
    parser.add_argument(
        "--production-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment for the production server (and the raw one's server), e.g. "
        "WEB_CONCURRENCY=3; repeatable",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="LABEL:NAME=VALUE,...",
        help="also measure the production server with this environment (to choose settings "
        "by measurement), e.g. sync:WEB_THREADS=1; repeatable",
    )
    parser.add_argument(
        "--results", type=Path, default=DEFAULT_RESULTS, help="where reports go (bench/results)"
    )
    parser.add_argument("--keep-data", action="store_true", help="keep the database folder")
    args = parser.parse_args(argv)
    quick = args.quick
    production_env = {}
    for item in args.production_env:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--production-env wants NAME=VALUE, not {item!r}")
        production_env[name] = value
    variants = {}
    for item in args.variant:
        label, sep, assignments = item.partition(":")
        pairs = [pair.partition("=") for pair in assignments.split(",") if pair]
        if not sep or not label or any(not eq for _, eq, _ in pairs):
            parser.error(f"--variant wants LABEL:NAME=VALUE,..., not {item!r}")
        variants[f"variant {label}"] = {name: value for name, _, value in pairs}
    connections = args.connections or ("8" if quick else "8,32")
    plan = Plan(
        users=args.users or (10 if quick else 100),
        notes=args.notes or (2_000 if quick else 100_000),
        seconds=args.seconds or (2 if quick else 10),
        warmup_seconds=0 if quick else 2,
        connections=[int(level) for level in connections.split(",")],
        repetitions=args.repetitions or (1 if quick else 3),
        pgbench_seconds=2 if quick else 5,
        pgbench_scale=1 if quick else 10,
        wrk_threads=2,
        production_env=production_env,
        variants=variants,
        quick=quick,
    )
    return plan, args.results, args.keep_data


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


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    plan, results_root, keep_data = parse_arguments(argv)
    try:
        wrk = require_wrk()
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir = results_root / stamp
    (out_dir / "logs").mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="keepnotes-bench-"))
    servers: list[Server] = []
    try:
        report = run(plan, wrk, work, out_dir, servers)
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        for server in servers:
            server.stop()
        leave_database()
        if keep_data:
            say(f"Database folder kept: {work / 'data'}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    from bench.report import write_reports

    written = write_reports(report, out_dir)
    latest = results_root / "latest"
    shutil.rmtree(latest, ignore_errors=True)
    shutil.copytree(out_dir, latest, ignore=shutil.ignore_patterns("logs"))
    for path in written:
        say(f"Wrote {path}")
    say(f"Copied to {latest}")
    print((out_dir / "report.md").read_text())
    return 0


def leave_database() -> None:
    if "django" not in sys.modules:
        return
    from django.conf import settings

    if not settings.configured:
        return
    from django.db import connections

    connections.close_all()
    if settings.EMBEDDED_DATABASE:
        from ops.embedded_postgres import for_data_dir

        for_data_dir(settings.DATA_DIR).leave()


def run(plan: Plan, wrk: str, work: Path, out_dir: Path, servers: list[Server]) -> dict:
    data_dir = work / "data"
    logs = out_dir / "logs"
    report: dict = {
        "meta": {
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "revision": git_revision(),
            "cpus": os.cpu_count(),
            "machine": platform.platform(),
            "python": platform.python_version(),
            "load_average_before": load_average(),
            "plan": plan.__dict__,
        },
    }

    # 1. Start-up, timed: first run (initdb + migrate + ready), then a warm restart.
    production_environ = child_environment(data_dir, **plan.production_env)
    production = Server(
        "production",
        [sys.executable, "manage.py", "serve"],
        production_environ,
        logs / "production.log",
        "/readyz",
    )
    say("First run of the production server (initdb, migrate, serve)")
    first_run = production.start()
    stop_seconds = production.stop()
    # Room for every configuration's connections at once, plus pgbench's (default: 100).
    with open(data_dir / "postgres" / "postgresql.conf", "a") as conf:
        conf.write("\n# keepnotes benchmark\nmax_connections = 400\n")
    say("Warm restart")
    servers.append(production)
    warm_restart = production.start()
    time.sleep(1)  # let workers finish booting before measuring idle memory
    report["startup"] = {
        "first_run_s": round(first_run, 2),
        "stop_s": round(stop_seconds, 2),
        "warm_restart_s": round(warm_restart, 2),
        "warm_restart_target_s": WARM_RESTART_TARGET_S,
    }
    say(f"First run {first_run:.2f} s, warm restart {warm_restart:.2f} s")
    memory = {
        "production_idle_after_start": memory_of(
            production.process.pid, leave_out=postgres_pid(data_dir)
        ),
        "postgres_idle_after_start": memory_of(postgres_pid(data_dir)),
    }

    # 2. The dataset, through the app's own settings and token service.
    for name in [key for key in os.environ if key.startswith(("DJANGO_", "DB_", "DATABASE_URL"))]:
        del os.environ[name]
    os.environ.update(child_environment(data_dir))
    import django

    django.setup()
    from django.db import connection

    from bench import seed

    connection.ensure_connection()  # joins the running embedded PostgreSQL
    say(f"Seeding {plan.notes} notes for {plan.users} users")
    seeding_started = time.monotonic()
    owners, words = seed.seed(users=plan.users, notes=plan.notes)
    seeded_notes = seed.last_seeded_id()
    dataset = work / "dataset.lua"
    write_dataset(dataset, owners, words)
    report["dataset"] = {
        "users": len(owners),
        "notes": sum(owner.last_id - owner.first_id + 1 for owner in owners),
        "seed_s": round(time.monotonic() - seeding_started, 2),
    }
    say(f"Seeded in {report['dataset']['seed_s']} s")

    # 3. The two references, against the same database.
    runserver = Server(
        "runserver",
        [sys.executable, "manage.py", "runserver", "--noreload", "127.0.0.1:{port}"],
        child_environment(data_dir, DB_CONN_MAX_AGE="0", DJANGO_DEBUG="false"),
        logs / "runserver.log",
        "/healthz",
    )
    runserver.command[-1] = f"127.0.0.1:{runserver.port}"
    raw = Server(
        "raw",
        [sys.executable, "-m", "bench.raw_wsgi"],
        production_environ,
        logs / "raw.log",
        "/healthz",
    )
    by_name = {"production": production, "runserver": runserver, "raw": raw}
    labels = dict(CONFIGS)
    environs = {"production": production_environ, "raw": production_environ}
    for name, overrides in plan.variants.items():
        environ = child_environment(data_dir, **{**plan.production_env, **overrides})
        environs[name] = environ
        labels[name] = "production with " + ", ".join(f"{k}={v}" for k, v in overrides.items())
        log = logs / f"{name.replace(' ', '-')}.log"
        command = [sys.executable, "manage.py", "serve"]
        by_name[name] = Server(name, command, environ, log, "/readyz")
    for name, server in by_name.items():
        if name != "production":
            servers.append(server)
            server.start()
    report["configurations"] = {
        name: {"label": label, "server": describe_server(name, environs.get(name, {}))}
        for name, label in labels.items()
    }

    # 4. Warm-up: every scenario on every configuration, not recorded.
    say("Warming up")
    top = max(plan.connections)
    for scenario in SCENARIOS if plan.warmup_seconds else []:
        for server in by_name.values():
            run_wrk(wrk, server.url, scenario, top, plan.warmup_seconds, dataset, plan.wrk_threads)
            if scenario == "write":
                seed.forget_writes(seeded_notes)
    memory["production_idle_after_warmup"] = memory_of(
        production.process.pid, leave_out=postgres_pid(data_dir)
    )

    # 5. The measured runs; the order of configurations rotates from one repetition to the next.
    pgbench_command = pgbench_prepare(plan.pgbench_scale, logs / "pgbench.log")
    runs: list[dict] = []
    pgbench_runs: list[dict] = []
    names = list(by_name)
    for repetition in range(plan.repetitions):
        order = names[repetition % len(names) :] + names[: repetition % len(names)]
        for connections in plan.connections:
            for scenario in SCENARIOS:
                for name in order:
                    app_pid, database_pid = by_name[name].process.pid, postgres_pid(data_dir)
                    app_before, database_before = cpu_seconds(app_pid), cpu_seconds(database_pid)
                    result = run_wrk(
                        wrk,
                        by_name[name].url,
                        scenario,
                        connections,
                        plan.seconds,
                        dataset,
                        plan.wrk_threads,
                    )
                    served = max(result["requests"], 1)
                    # CPU per request: what the load cost each side, whatever the machine's noise.
                    # The app's tree holds no PostgreSQL: each side is counted once.
                    app_cpu = cpu_seconds(app_pid) - app_before
                    if by_name[name].owns(database_pid):
                        app_cpu -= cpu_seconds(database_pid) - database_before
                    result["app_cpu_ms_per_request"] = round(app_cpu * 1000 / served, 3)
                    result["postgres_cpu_ms_per_request"] = round(
                        (cpu_seconds(database_pid) - database_before) * 1000 / served, 3
                    )
                    if scenario == "write":
                        result["written_then_deleted"] = seed.forget_writes(seeded_notes)
                    say(
                        f"rep {repetition + 1} c={connections} {scenario:9} {name:10} "
                        f"{result['rps']:8.1f} req/s  p50 {result['p50_ms']:6.2f} ms  "
                        f"p99 {result['p99_ms']:7.2f} ms  errors {result['errors']}"
                    )
                    runs.append(
                        {
                            "repetition": repetition + 1,
                            "configuration": name,
                            "scenario": scenario,
                            "connections": connections,
                            **result,
                        }
                    )
            measured = run_pgbench(
                pgbench_command, connections, plan.pgbench_seconds, plan.wrk_threads
            )
            say(f"rep {repetition + 1} c={connections} pgbench -S {measured['tps']:.0f} tps")
            pgbench_runs.append(
                {"repetition": repetition + 1, "connections": connections, **measured}
            )

    memory["production_idle_after_load"] = memory_of(
        production.process.pid, leave_out=postgres_pid(data_dir)
    )
    memory["postgres_after_load"] = memory_of(postgres_pid(data_dir))
    report["memory"] = memory
    report["runs"] = runs
    report["pgbench_runs"] = pgbench_runs
    report["meta"]["load_average_after"] = load_average()
    report["meta"]["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    summarise(report, plan)
    return report


def postgres_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postgres" / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def describe_server(name: str, production_environ: dict) -> dict:
    if name == "runserver":
        return {"server": "django runserver (threaded)", "CONN_MAX_AGE": 0}
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


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 2)


def summarise(report: dict, plan: Plan) -> None:
    """Medians per (configuration, scenario, connections), ratios, and the targets' verdicts."""
    table = []
    for connections in plan.connections:
        for scenario in SCENARIOS:
            row = {"scenario": scenario, "connections": connections}
            for name in report["configurations"]:
                found = [
                    run
                    for run in report["runs"]
                    if (run["configuration"], run["scenario"], run["connections"])
                    == (name, scenario, connections)
                ]
                row[name] = {
                    "rps": _median([run["rps"] for run in found]),
                    "p50_ms": _median([run["p50_ms"] for run in found]),
                    "p99_ms": _median([run["p99_ms"] for run in found]),
                    "errors": sum(run["errors"] for run in found),
                    "app_cpu_ms": _median([run["app_cpu_ms_per_request"] for run in found]),
                    "postgres_cpu_ms": _median(
                        [run["postgres_cpu_ms_per_request"] for run in found]
                    ),
                    "runs": len(found),
                }
            production = row["production"]["rps"]
            row["ratio_vs_runserver"] = round(production / max(row["runserver"]["rps"], 0.1), 2)
            row["ratio_vs_raw"] = round(production / max(row["raw"]["rps"], 0.1), 2)
            for name in plan.variants:
                row[name]["ratio_vs_production"] = round(row[name]["rps"] / max(production, 0.1), 2)
            table.append(row)
    report["medians"] = table

    pgbench = []
    for connections in plan.connections:
        found = [run for run in report["pgbench_runs"] if run["connections"] == connections]
        pgbench.append(
            {
                "connections": connections,
                "tps": _median([run["tps"] for run in found]),
                "latency_avg_ms": _median([run["latency_avg_ms"] for run in found]),
            }
        )
    report["pgbench"] = pgbench

    targets = []
    for row in table:
        for scenario, reference, least in RATIO_TARGETS:
            if row["scenario"] != scenario:
                continue
            ratio = row[f"ratio_vs_{reference}"]
            targets.append(
                {
                    "target": f"{scenario} at {row['connections']} connections: "
                    f">= {least:g}x {reference}",
                    "value": ratio,
                    "met": ratio >= least,
                }
            )
        if row["scenario"] in P99_TARGET_SCENARIOS and row["connections"] == max(plan.connections):
            p99 = row["production"]["p99_ms"]
            where = row["connections"]
            note = "" if where == P99_TARGET_CONNECTIONS else f" (measured at {where})"
            targets.append(
                {
                    "target": f"{row['scenario']} p99 < {P99_TARGET_MS:g} ms at "
                    f"{P99_TARGET_CONNECTIONS} connections{note}",
                    "value": p99,
                    "met": p99 < P99_TARGET_MS,
                }
            )
    warm = report["startup"]["warm_restart_s"]
    targets.append(
        {
            "target": f"warm restart to ready < {WARM_RESTART_TARGET_S:g} s",
            "value": warm,
            "met": warm < WARM_RESTART_TARGET_S,
        }
    )
    report["targets"] = targets


if __name__ == "__main__":
    sys.exit(main())
