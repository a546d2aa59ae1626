"""The soak's report: each memory series' growth per hour, the markdown, the chart."""

import json
from pathlib import Path
from statistics import linear_regression

from bench.soak_memory import GROUPS


def growth_per_hour(seconds: list[float], values: list[float]) -> float | None:
    """The slope of a least-squares line through (seconds, values), per hour; None if < 2."""
    if len(seconds) < 2 or len(set(seconds)) < 2:
        return None
    slope, _ = linear_regression(seconds, values)
    return round(slope * 3600, 2)


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
