"""The run's summary: medians per cell, ratios between configurations, the targets' verdicts."""

from statistics import median

from bench.scenarios import (
    P99_TARGET_CONNECTIONS,
    P99_TARGET_MS,
    P99_TARGET_SCENARIOS,
    RATIO_TARGETS,
    SCENARIOS,
    WARM_RESTART_TARGET_S,
    Plan,
)


def _median(values: list[float]) -> float:
    return round(median(values), 2)


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
