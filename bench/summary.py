"""The run's summary: medians per cell, ratios between configurations, the targets' verdicts."""

from statistics import median

from bench.scenarios import (
    P99_TARGET_CONNECTIONS,
    P99_TARGET_MS,
    P99_TARGET_SCENARIOS,
    PHASE_SCENARIOS,
    RATIO_TARGETS,
    REFERENCES,
    WARM_RESTART_TARGET_S,
    WARMUP_TARGET_SHARE,
    Plan,
)


def _median(values: list[float]) -> float:
    return round(median(values), 2)


def summarise(report: dict, plan: Plan) -> None:
    """Medians per (configuration, scenario, connections), ratios, and the targets' verdicts."""
    references = [name for name in REFERENCES if name in plan.configurations]
    table = []
    for connections in plan.connections:
        for scenario in [name for name in plan.scenarios if name not in PHASE_SCENARIOS]:
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
            for name in references:
                row[f"ratio_vs_{name}"] = round(production / max(row[name]["rps"], 0.1), 2)
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
    if "after_restart" in report:
        _compare_with_steady_state(report["after_restart"], table)
    report["targets"] = targets(report, plan)


def _row(table: list[dict], scenario: str, connections: int) -> dict | None:
    return next(
        (row for row in table if (row["scenario"], row["connections"]) == (scenario, connections)),
        None,
    )


def _compare_with_steady_state(after_restart: dict, table: list[dict]) -> None:
    row = _row(table, after_restart["scenario"], after_restart["connections"])
    steady = row["production"]["rps"]
    after_restart["steady_rps"] = steady
    for window in after_restart["windows"]:
        window["share_of_steady"] = round(window["rps"] / max(steady, 0.1), 2)
    after_restart["lowest_share"] = min(w["share_of_steady"] for w in after_restart["windows"])


def _target(text: str, value: float | None, met: bool | None, detail: str = "") -> dict:
    """One verdict; `value` and `met` are None when this run did not measure what it needs."""
    return {"target": text, "value": value, "met": met, "detail": detail}


def targets(report: dict, plan: Plan) -> list[dict]:
    """Every target of the issue, met or not met with its numbers, or not measured in this run."""
    table, found = report["medians"], []
    for connections in plan.connections:
        for scenario, reference, least in RATIO_TARGETS:
            text = f"{scenario} at {connections} connections: >= {least:g}x {reference}"
            row = _row(table, scenario, connections)
            if row is None or reference not in row:
                found.append(_target(text, None, None))
                continue
            ratio = row[f"ratio_vs_{reference}"]
            detail = (
                f"production {row['production']['rps']:,.0f} req/s, "
                f"{reference} {row[reference]['rps']:,.0f} req/s"
            )
            found.append(_target(text, ratio, ratio >= least, detail))
    top = max(plan.connections)
    note = "" if top == P99_TARGET_CONNECTIONS else f" (measured at {top})"
    for scenario in P99_TARGET_SCENARIOS:
        text = f"{scenario} p99 < {P99_TARGET_MS:g} ms at {P99_TARGET_CONNECTIONS} conns{note}"
        row = _row(table, scenario, top)
        if row is None:
            found.append(_target(text, None, None))
            continue
        p99 = row["production"]["p99_ms"]
        detail = f"p50 {row['production']['p50_ms']} ms"
        found.append(_target(text, p99, p99 < P99_TARGET_MS, detail))
    startup = report["startup"]
    warm = startup["warm_restart_s"]
    found.append(
        _target(
            f"warm restart to ready < {WARM_RESTART_TARGET_S:g} s",
            warm,
            warm < WARM_RESTART_TARGET_S,
            f"the stop before it: {startup['stop_s']} s",
        )
    )
    after = report.get("after_restart")
    text = (
        f"warm-up: every {after['window_s'] if after else '?'} s window of the first "
        f"{plan.after_restart_seconds} s after a start >= {WARMUP_TARGET_SHARE:g}x steady state"
    )
    if after is None:
        found.append(_target(text, None, None))
    else:
        detail = (
            f"{after['scenario']} at {after['connections']} connections: "
            + ", ".join(f"{w['rps']:,.0f}" for w in after["windows"])
            + f" req/s against {after['steady_rps']:,.0f} steady"
        )
        lowest = after["lowest_share"]
        found.append(_target(text, lowest, lowest >= WARMUP_TARGET_SHARE, detail))
    return found
