"""The benchmark's outputs: report.json, report.md and chart.png, from the run's results."""

import json
from pathlib import Path

from bench import downloads, slow_clients
from bench.scenarios import CONFIGS, REFERENCES


def write_reports(report: dict, out_dir: Path) -> list[Path]:
    json_path = out_dir / "report.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    markdown_path = out_dir / "report.md"
    markdown_path.write_text(markdown(report))
    chart_path = out_dir / "chart.png"
    chart(report, chart_path)
    return [json_path, markdown_path, chart_path]


def _cell(result: dict) -> list[str]:
    return [
        f"{result['rps']:,.0f}",
        f"{result['p50_ms']:.1f}",
        f"{result['p99_ms']:.1f}",
        str(result["errors"]),
    ]


def _measured(report: dict) -> tuple[list[str], list[str]]:
    """The configurations of CONFIGS this run measured, and the references among them."""
    names = [name for name in CONFIGS if name in report["configurations"]]
    return names, [name for name in REFERENCES if name in names]


def markdown(report: dict) -> str:
    meta, plan = report["meta"], report["meta"]["plan"]
    measured, references = _measured(report)
    lines = [
        "# keepnotes benchmark",
        "",
        f"{meta['started']}, revision {meta['revision']}, {meta['cpus']} CPUs "
        f"({meta['machine']}, Python {meta['python']}); load average before "
        f"{meta['load_average_before']}, after {meta['load_average_after']}.",
        f"{report['dataset']['notes']:,} notes of {report['dataset']['users']} users; "
        f"{plan['seconds']} s per scenario and configuration, wrk with {plan['wrk_threads']} "
        f"threads on the same machine; medians of {plan['repetitions']} repetition(s). "
        "Ratios within one run are the headline: the machine is shared and noisy.",
        "",
        "Configurations:",
        "",
    ]
    for name, details in report["configurations"].items():
        server = ", ".join(f"{key} {value}" for key, value in details["server"].items())
        lines.append(f"- **{name}** ({details['label']}): {server}")
    lines += [
        "",
        "## Requests per second, latency (ms), errors",
        "",
    ]
    header = ["scenario", "conns"]
    for name in measured:
        header += [f"{name} req/s", "p50", "p99", "err"]
    header += [f"x {name}" for name in references]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---"] * 2 + ["--:"] * (len(header) - 2)) + "|")
    for row in report["medians"]:
        cells = [row["scenario"], str(row["connections"])]
        for name in measured:
            cells += _cell(row[name])
        cells += [f"**{row[f'ratio_vs_{name}']:.2f}x**" for name in references]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "## CPU per request (ms): app server, PostgreSQL",
        "",
        "What each request cost on each side, measured from the processes' CPU time: steadier",
        "than requests/s on a shared machine, and where the remaining cost is.",
        "",
    ]
    names = list(report["configurations"])
    lines.append("| scenario | conns | " + " | ".join(names) + " |")
    lines.append("|---|--:|" + "--:|" * len(names))
    for row in report["medians"]:
        cells = [row["scenario"], str(row["connections"])]
        cells += [
            f"{row[name]['app_cpu_ms']:.2f} + {row[name]['postgres_cpu_ms']:.2f}" for name in names
        ]
        lines.append("| " + " | ".join(cells) + " |")
    variants = [name for name in report["configurations"] if name.startswith("variant ")]
    if variants:
        lines += ["", "## Variants of the production server (same run)", ""]
        lines += ["| variant | scenario | conns | req/s | p50 | p99 | err | x production |"]
        lines += ["|---|---|--:|--:|--:|--:|--:|--:|"]
        for name in variants:
            for row in report["medians"]:
                cells = [name.removeprefix("variant "), row["scenario"], str(row["connections"])]
                cells += [*_cell(row[name]), f"{row[name]['ratio_vs_production']:.2f}x"]
                lines.append("| " + " | ".join(cells) + " |")
    lines += slow_clients.markdown_section(report)
    lines += downloads.markdown_section(report)
    lines += ["", "## Targets", "", "| target | measured | met | numbers |", "|---|--:|---|---|"]
    for target in report["targets"]:
        if target["met"] is None:
            lines.append(f"| {target['target']} | | not measured in this run | |")
            continue
        verdict = "yes" if target["met"] else "NO"
        lines.append(
            f"| {target['target']} | {target['value']:g} | {verdict} | {target['detail']} |"
        )
    lines += _after_restart(report)
    startup, memory = report["startup"], report["memory"]
    lines += [
        "",
        "## Start-up and memory",
        "",
        f"- first run (initdb + migrate + ready): {startup['first_run_s']} s",
        f"- warm restart to ready: {startup['warm_restart_s']} s (stop took {startup['stop_s']} s)",
    ]
    labels = {
        "production_idle_after_start": "production server, idle after start",
        "postgres_idle_after_start": "PostgreSQL, idle after start",
        "production_idle_after_warmup": "production server, idle after warm-up",
        "production_idle_after_load": "production server, idle after the load",
        "postgres_after_load": "PostgreSQL, after the load (all configurations' connections)",
    }
    for key, label in labels.items():
        found = memory.get(key)
        if found:
            lines.append(
                f"- {label}: {found['pss_mib']} MiB PSS ({found['rss_mib']} MiB RSS, "
                f"{found['processes']} processes)"
            )
    lines += ["", "## pgbench -S (select-only) on the same PostgreSQL", ""]
    lines += ["| conns | tps | latency avg (ms) |", "|--:|--:|--:|"]
    for row in report["pgbench"]:
        lines.append(f"| {row['connections']} | {row['tps']:,.0f} | {row['latency_avg_ms']} |")
    lines.append("")
    return "\n".join(lines)


def _after_restart(report: dict) -> list[str]:
    after = report.get("after_restart")
    if not after:
        return []
    lines = [
        "",
        "## Warm-up: the first seconds after a restart",
        "",
        f"Production restarted (stop {after['stop_s']} s, ready after {after['restart_s']} s), "
        f"then {after['scenario']} at {after['connections']} connections at once, in "
        f"{after['window_s']} s windows; steady state is the measured runs' median, "
        f"{after['steady_rps']:,.0f} req/s.",
        "",
        "| from (s after ready) | req/s | x steady | p50 | p99 | err |",
        "|--:|--:|--:|--:|--:|--:|",
    ]
    for window in after["windows"]:
        rps, p50, p99, errors = _cell(window)
        lines.append(
            f"| {window['started_s']:.1f} | {rps} | {window['share_of_steady']:.2f} | {p50} | "
            f"{p99} | {errors} |"
        )
    return lines


def chart(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = sorted({row["connections"] for row in report["medians"]})
    measured, references = _measured(report)
    colours = {
        "production": "#2b7bb9",
        "runserver": "#d9822b",
        "drf": "#4c9a52",
        "bolt": "#a0439b",
        "raw": "#7a7a7a",
    }
    figure, axes = plt.subplots(
        2, len(levels), figsize=(max(8, 6.5 * len(levels)), 8.5), squeeze=False, sharey="row"
    )
    width = 0.8 / len(measured)
    scenarios = list(dict.fromkeys(row["scenario"] for row in report["medians"]))
    for column, level in enumerate(levels):
        rows = {row["scenario"]: row for row in report["medians"] if row["connections"] == level}
        for line, (metric, title) in enumerate(
            [("rps", "requests/s (log scale)"), ("p99_ms", "p99 latency, ms (log scale)")]
        ):
            axis = axes[line][column]
            for offset, name in enumerate(measured):
                values = [max(rows[s][name][metric], 0.01) for s in scenarios]
                shift = (offset - (len(measured) - 1) / 2) * width
                positions = [i + shift for i in range(len(scenarios))]
                bars = axis.bar(positions, values, width, label=name, color=colours[name])
                if metric == "rps":
                    axis.bar_label(bars, fmt="%.0f", fontsize=7)
            if metric == "rps":
                for i, scenario in enumerate(scenarios):
                    row = rows[scenario]
                    axis.annotate(
                        "\n".join(f"x{row[f'ratio_vs_{name}']:.2f} {name}" for name in references),
                        (i - (len(measured) - 1) / 2 * width, row["production"]["rps"]),
                        textcoords="offset points",
                        xytext=(0, 14),
                        ha="center",
                        fontsize=7,
                        color=colours["production"],
                    )
            axis.set_yscale("log")
            axis.set_xticks(range(len(scenarios)), scenarios)
            axis.set_title(f"{title}, {level} connections", fontsize=10)
            axis.grid(axis="y", alpha=0.3)
            axis.margins(y=0.25)
    handles, names = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, names, loc="lower center", ncol=len(names), fontsize=8)
    meta = report["meta"]
    figure.suptitle(
        f"keepnotes: {' vs '.join(measured)}\n({report['dataset']['notes']:,} "
        f"notes, {meta['cpus']} CPUs, medians of {meta['plan']['repetitions']})",
        fontsize=11,
    )
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    figure.savefig(path, dpi=110)
    plt.close(figure)
