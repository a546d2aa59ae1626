"""One run, phase by phase: start-up, seeding, references, warm-up, the measured load, restart."""

import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from bench import downloads, slow_clients
from bench.answers import check_read_one
from bench.bolt_peer import launch as bolt_peer
from bench.circumstances import describe_server, git_revision, load_average
from bench.drf_peer import launch as drf_peer
from bench.errors import BenchError
from bench.load import pgbench_prepare, run_pgbench, run_wrk, write_dataset
from bench.processes import (
    Server,
    child_environment,
    cpu_seconds,
    memory_of,
    postgres_pid,
)
from bench.scenarios import (
    CONFIGS,
    PHASE_SCENARIOS,
    WARM_RESTART_TARGET_S,
    WARMUP_SCENARIO,
    Plan,
)
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
    join_database(data_dir)
    from django.db import connection

    from bench import seed

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

    # 3. The references and the variants, against the same database, booting side by side.
    by_name = {"production": production}
    environs = {"production": production_environ}
    if "runserver" in plan.configurations:
        by_name["runserver"] = Server(
            "runserver",
            [sys.executable, "manage.py", "runserver", "--noreload"],
            child_environment(data_dir, DB_CONN_MAX_AGE="0", DJANGO_DEBUG="false"),
            logs / "runserver.log",
            "/healthz",
        )
        by_name["runserver"].command.append(f"127.0.0.1:{by_name['runserver'].port}")
    if "drf" in plan.configurations:
        environs["drf"] = drf_peer.environment(data_dir, connection.settings_dict)
        by_name["drf"] = drf_peer.server(environs["drf"], logs / "drf.log")
    if "bolt" in plan.configurations:
        environs["bolt"] = bolt_peer.environment(data_dir, connection.settings_dict)
        by_name["bolt"] = bolt_peer.server(environs["bolt"], logs / "bolt.log")
    if "raw" in plan.configurations:
        environs["raw"] = production_environ
        command = [sys.executable, "-m", "bench.raw_wsgi"]
        by_name["raw"] = Server("raw", command, production_environ, logs / "raw.log", "/healthz")
    labels = {name: CONFIGS[name] for name in by_name}
    for name, overrides in plan.variants.items():
        environ = child_environment(data_dir, **{**plan.production_env, **overrides})
        environs[name] = environ
        labels[name] = "production with " + ", ".join(f"{k}={v}" for k, v in overrides.items())
        log = logs / f"{name.replace(' ', '-')}.log"
        command = [sys.executable, "manage.py", "serve"]
        by_name[name] = Server(name, command, environ, log, "/readyz")
    starting = [server for name, server in by_name.items() if name != "production"]
    for server in starting:
        servers.append(server)
        server.launch()
    # While they boot: each configuration's dataset (the DRF peer has tokens of its own, for the
    # same users: the app stores only hashes of its tokens), and how each one serves.
    datasets, owners_of = dict.fromkeys(by_name, dataset), dict.fromkeys(by_name, owners)
    if "drf" in by_name:
        keys = drf_peer.tokens(environs["drf"], [owner.user_id for owner in owners])
        datasets["drf"] = work / "dataset-drf.lua"
        owners_of["drf"] = [replace(owner, token=keys[owner.user_id]) for owner in owners]
        write_dataset(datasets["drf"], owners_of["drf"], words)
    report["configurations"] = {
        name: {"label": label, "server": describe_server(name, environs.get(name, {}))}
        for name, label in labels.items()
    }
    for server in starting:
        server.wait_ready()
    report["answers"] = {
        name: check_answers(name, server, owners_of[name]) for name, server in by_name.items()
    }

    # 4. Warm-up: every scenario on every configuration, not recorded.
    say("Warming up")
    top = max(plan.connections)
    matrix = [scenario for scenario in plan.scenarios if scenario not in PHASE_SCENARIOS]
    for scenario in matrix if plan.warmup_seconds else []:
        for name, server in by_name.items():
            seconds, threads = plan.warmup_seconds, plan.wrk_threads
            run_wrk(wrk, server.url, scenario, top, seconds, datasets[name], threads)
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
            for scenario in matrix:
                for name in order:
                    app_pid, database_pid = by_name[name].process.pid, postgres_pid(data_dir)
                    app_before, database_before = cpu_seconds(app_pid), cpu_seconds(database_pid)
                    result = run_wrk(
                        wrk,
                        by_name[name].url,
                        scenario,
                        connections,
                        plan.seconds,
                        datasets[name],
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

    # The slow and idle clients, held open while read-one runs (bench/slow_clients.py).
    report["slow_clients"] = slow_clients.measure(plan, wrk, dataset, by_name, say)
    if "download" in plan.scenarios:
        report["downloads"] = downloads.measure(plan, wrk, dataset, production, owners[0], say)
    memory["production_idle_after_load"] = memory_of(
        production.process.pid, leave_out=postgres_pid(data_dir)
    )
    memory["postgres_after_load"] = memory_of(postgres_pid(data_dir))
    report["memory"] = memory

    # 6. Warm-up after a restart: production restarted afresh and loaded at once, in windows.
    report["after_restart"] = load_after_restart(plan, wrk, production, dataset, seeded_notes)
    report["runs"] = runs
    report["pgbench_runs"] = pgbench_runs
    report["meta"]["load_average_after"] = load_average()
    report["meta"]["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    summarise(report, plan)
    report["targets"] += downloads.targets(report)
    return report


def check_answers(name: str, server: Server, owners: list) -> dict:
    """`server` answers read-one with the right note, and refuses the wrong callers
    (bench/answers.py); BenchError otherwise."""
    from django.db import connection

    caller, others = owners[0], owners[1:]
    with connection.cursor() as cursor:
        cursor.execute("SELECT title FROM notes_note WHERE id = %s", [caller.first_id])
        (title,) = cursor.fetchone()
    return check_read_one(
        name,
        server.url,
        token=caller.token,
        note_id=caller.first_id,
        title=title,
        foreign_id=others[0].first_id if others else None,
    )


def load_after_restart(
    plan: Plan, wrk: str, production: Server, dataset: Path, seeded_notes: int
) -> dict:
    """Requests/s in the first seconds after a restart, window by window (steady state: the
    measured runs, compared in summary.py)."""
    from bench import seed

    matrix = [scenario for scenario in plan.scenarios if scenario not in PHASE_SCENARIOS]
    scenario = WARMUP_SCENARIO if WARMUP_SCENARIO in matrix or not matrix else matrix[0]
    connections, window = max(plan.connections), plan.after_restart_window_seconds
    say(f"Restarting production, then {scenario} at once for {plan.after_restart_seconds} s")
    stop_seconds = production.stop()
    restart_seconds = production.start()
    ready_at = time.monotonic()
    windows = []
    for _ in range(plan.after_restart_seconds // window):
        started = time.monotonic() - ready_at
        result = run_wrk(
            wrk, production.url, scenario, connections, window, dataset, plan.wrk_threads
        )
        windows.append({"started_s": round(started, 2), **result})
        say(f"  +{started:5.1f} s  {result['rps']:8.1f} req/s  p99 {result['p99_ms']:7.2f} ms")
    if scenario == "write":
        seed.forget_writes(seeded_notes)
    return {
        "scenario": scenario,
        "connections": connections,
        "stop_s": round(stop_seconds, 2),
        "restart_s": round(restart_seconds, 2),
        "window_s": window,
        "windows": windows,
    }


def measure_in_scratch(measure: Callable[[Path, list], dict], keep_data: bool, prefix: str):
    """`measure(work, servers)` in a throwaway folder. Afterwards, whatever happened, the servers
    it started are stopped, Django leaves the database, and the folder goes unless kept.
    Returns its report, or None when it failed (and said why)."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    servers: list = []
    try:
        return measure(work, servers)
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return None
    finally:
        for server in servers:
            server.stop()
        leave_database()
        if keep_data:
            say(f"Database folder kept: {work / 'data'}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def publish(out_dir: Path, latest: Path) -> None:
    """A run's reports, not its logs, copied to `latest` in place of the last run's."""
    shutil.rmtree(latest, ignore_errors=True)
    shutil.copytree(out_dir, latest, ignore=shutil.ignore_patterns("logs"))


def join_database(data_dir: Path) -> None:
    """Set Django up in this process on the benchmark's data folder, and join its running
    embedded PostgreSQL (for seeding and counting; `leave_database` undoes it)."""
    for name in [key for key in os.environ if key.startswith(("DJANGO_", "DB_", "DATABASE_URL"))]:
        del os.environ[name]
    os.environ.update(child_environment(data_dir))
    import django

    django.setup()
    from django.db import connection

    connection.ensure_connection()


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
