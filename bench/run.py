"""The load benchmark: production vs runserver, DRF and django-bolt peers, raw WSGI, same run.

`uv run python -m bench` (full: 100,000 notes, 100 users, 10 s per scenario, 8 and 32
connections, 3 repetitions) or `uv run python -m bench --quick` (CI: seconds, not minutes).
Everything runs on this machine against one throwaway embedded PostgreSQL 18: the report says
how the configurations compare, which is what matters on a shared, noisy machine.
"""

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench.errors import BenchError
from bench.load import require_wrk
from bench.phases import measure_in_scratch, publish, run, say
from bench.processes import environment_assignment
from bench.report import write_reports
from bench.scenarios import CONFIGS, PHASE_SCENARIOS, SCENARIOS, Plan

DEFAULT_RESULTS = Path(__file__).resolve().parent / "results"


def parse_arguments(argv: list[str] | None) -> tuple[Plan, Path, bool]:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny and short: CI's smoke run")
    parser.add_argument("--users", type=int)
    parser.add_argument("--notes", type=int, help="notes in all (shared out among the users)")
    parser.add_argument("--seconds", type=int, help="load per scenario and configuration")
    parser.add_argument("--connections", help="comma-separated concurrency levels, e.g. 8,32")
    parser.add_argument("--repetitions", type=int, help="runs of everything; medians reported")
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, of {', '.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument(
        "--configurations",
        default=",".join(CONFIGS),
        help=f"comma-separated, of {', '.join(CONFIGS)} (default: all; production and any "
        "--variant always run): e.g. production,raw to measure variants in a shorter run",
    )
    parser.add_argument(
        "--production-env",
        action="append",
        default=[],
        type=environment_assignment,
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
    parser.add_argument(
        "--soak",
        type=float,
        metavar="MINUTES",
        help="instead: a steady mixed load for MINUTES, watching memory (bench/soak.py; "
        "`--soak 1 --help` lists its options)",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    variants = {}
    for item in args.variant:
        label, sep, assignments = item.partition(":")
        pairs = [pair.partition("=") for pair in assignments.split(",") if pair]
        if not sep or not label or any(not eq for _, eq, _ in pairs):
            parser.error(f"--variant wants LABEL:NAME=VALUE,..., not {item!r}")
        variants[f"variant {label}"] = {name: value for name, _, value in pairs}
    scenarios = _choose(parser, "--scenarios", args.scenarios, SCENARIOS)
    if all(name in PHASE_SCENARIOS for name in scenarios):
        parser.error(
            f"--scenarios {args.scenarios} wants a scenario of the matrix beside it (e.g. "
            "read-one): the restart and the report compare with it"
        )
    configurations = _choose(parser, "--configurations", args.configurations, CONFIGS)
    connections = args.connections or ("8" if quick else "8,32")
    plan = Plan(
        users=args.users or (10 if quick else 100),
        notes=args.notes or (2_000 if quick else 100_000),
        seconds=args.seconds or (1 if quick else 10),
        warmup_seconds=0 if quick else 2,
        connections=[int(level) for level in connections.split(",")],
        repetitions=args.repetitions or (1 if quick else 3),
        pgbench_seconds=2 if quick else 5,
        pgbench_scale=1 if quick else 10,
        wrk_threads=2,
        production_env=dict(args.production_env),
        variants=variants,
        quick=quick,
        scenarios=scenarios,
        configurations=["production", *(name for name in configurations if name != "production")],
        after_restart_seconds=2 if quick else 10,
        after_restart_window_seconds=1 if quick else 2,
    )
    return plan, args.results, args.keep_data


def _choose(parser, option: str, given: str, known: dict) -> list[str]:
    """The names `given` (comma-separated) in `known`'s order; an unknown name is an error."""
    names = {name.strip() for name in given.split(",") if name.strip()}
    unknown = sorted(names - set(known))
    if unknown or not names:
        parser.error(f"{option} takes names from {', '.join(known)}, not {given!r}")
    return [name for name in known if name in names]


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if any(argument.split("=")[0] == "--soak" for argument in arguments):
        from bench import soak

        return soak.main(arguments)
    plan, results_root, keep_data = parse_arguments(argv)
    try:
        wrk = require_wrk()
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out_dir = results_root / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (out_dir / "logs").mkdir(parents=True, exist_ok=True)
    report = measure_in_scratch(
        lambda work, servers: run(plan, wrk, work, out_dir, servers), keep_data, "keepnotes-bench-"
    )
    if report is None:
        return 1
    written = write_reports(report, out_dir)
    latest = results_root / "latest"
    publish(out_dir, latest)
    for path in written:
        say(f"Wrote {path}")
    say(f"Copied to {latest}")
    print((out_dir / "report.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
