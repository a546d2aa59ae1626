"""One run, phase by phase: start-up, seeding, the references, warm-up, the measured load."""

import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.load import pgbench_prepare, run_pgbench, run_wrk, write_dataset
from bench.processes import (
    REPO,
    Server,
    child_environment,
    cpu_seconds,
    memory_of,
    postgres_pid,
)
from bench.scenarios import CONFIGS, SCENARIOS, WARM_RESTART_TARGET_S, Plan
from bench.summary import summarise


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


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
    pgbench_command, pgbench_environ = pgbench_prepare(plan.pgbench_scale, logs / "pgbench.log")
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
                pgbench_command,
                pgbench_environ,
                connections,
                plan.pgbench_seconds,
                plan.wrk_threads,
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


def leave_database() -> None:
    """Close Django's connections and leave the embedded PostgreSQL (its last user stops it)."""
    if "django" not in sys.modules:
        return
    from django.conf import settings

    if not settings.configured:
        return
    from django.db import connections

    connections.close_all()
    if settings.EMBEDDED_DATABASE:
        from pgembedded.postgres import for_data_dir

        for_data_dir(settings.DATA_DIR).leave()


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
