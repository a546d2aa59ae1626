"""The soak mode's measuring parts, on real processes: the memory sampler, the grouping of a
process tree by role, the growth fit, the pacing (bench/soak.py)."""

import subprocess
import sys
import time

import pytest

from bench.errors import BenchError
from bench.soak import pace_delay_ms
from bench.soak_memory import memory_of_processes, process_groups, sample_memory
from bench.soak_report import growth, growth_per_hour

# Allocates MIB mebibytes of written (so resident) memory when told to, then waits to be killed.
ALLOCATOR = """
import sys
sys.stdin.readline()
held = b"x" * (int(sys.argv[1]) << 20)
print("allocated", flush=True)
sys.stdin.readline()
"""

# Shaped like `serve`: a fork of itself (a web worker), a `task_worker` child, and another
# child (like `manage.py protect`); it prints "ready" once all three run.
SERVE_LIKE = """
import os, subprocess, sys, time
if os.fork() == 0:
    time.sleep(60)
    os._exit(0)
waiting = [sys.executable, "-c", "import time; time.sleep(60)"]
task = subprocess.Popen([*waiting, "task_worker"])
other = subprocess.Popen([*waiting, "protect"])
print("ready", flush=True)
sys.stdin.readline()
"""


def spawn(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def stop(process: subprocess.Popen) -> None:
    subprocess.run(["pkill", "-KILL", "-s", str(process.pid)], check=False)  # its session
    process.kill()
    process.wait()


@pytest.mark.parametrize("allocate_mib", [64, 0], ids=["allocates", "negative-control"])
def test_the_sampler_sees_what_a_real_process_allocates(allocate_mib):
    process = spawn(ALLOCATOR, str(allocate_mib))
    try:
        time.sleep(0.3)  # the interpreter has started
        before = memory_of_processes([process.pid])
        process.stdin.write("\n")
        process.stdin.flush()
        assert process.stdout.readline().strip() == "allocated"
        after = memory_of_processes([process.pid])
    finally:
        stop(process)
    assert before["processes"] == after["processes"] == 1
    assert before["rss_mib"] > 1 and before["pss_mib"] > 1
    for metric in ("rss_mib", "pss_mib"):
        grown = after[metric] - before[metric]
        if allocate_mib:
            assert grown >= allocate_mib * 0.9, (metric, before, after)
        else:
            assert grown < 8, (metric, before, after)


def test_a_gone_process_counts_for_nothing():
    process = spawn("pass")
    process.wait()
    assert memory_of_processes([process.pid]) == {"processes": 0, "rss_mib": 0, "pss_mib": 0}


def test_a_serve_shaped_tree_is_split_by_role():
    serve, database = spawn(SERVE_LIKE), spawn(ALLOCATOR, "0")
    try:
        assert serve.stdout.readline().strip() == "ready"
        time.sleep(0.5)  # the children's interpreters have started: their memory holds still
        groups = process_groups(serve.pid, database.pid)
        memory = sample_memory(serve.pid, database.pid)
    finally:
        stop(serve)
        stop(database)
    assert len(groups["web_workers"]) == 1, groups  # the fork, with serve's command line
    assert len(groups["task_workers"]) == 1, groups
    assert groups["serve"][0] == serve.pid and len(groups["serve"]) == 2, groups  # + "protect"
    assert groups["postgres"] == [database.pid]
    every = [pid for name in ("web_workers", "task_workers", "serve") for pid in groups[name]]
    assert len(every) == len(set(every)) == 4, "each process in one group"
    assert memory["app"]["processes"] == 4 and memory["postgres"]["processes"] == 1
    parts = sum(memory[name]["pss_mib"] for name in ("web_workers", "task_workers", "serve"))
    assert memory["app"]["pss_mib"] == pytest.approx(parts, abs=0.5)  # each rounded, read apart


def test_growth_per_hour_is_the_slope_of_the_fitted_line():
    minutes = [60.0 * n for n in range(30)]
    rising = [100 + 0.01 * t + (0.5 if n % 2 else -0.5) for n, t in enumerate(minutes)]
    assert growth_per_hour(minutes, rising) == pytest.approx(36, abs=1)  # 0.01 MiB/s
    assert growth_per_hour(minutes, [100.0] * 30) == 0
    assert growth_per_hour(minutes, [200 - 0.02 * t for t in minutes]) == pytest.approx(-72)
    assert growth_per_hour([0.0], [1.0]) is None
    assert growth_per_hour([5.0, 5.0], [1.0, 2.0]) is None


def test_growth_fits_each_series_and_its_second_half():
    def sample(t: float, web: float) -> dict:
        memory = {"rss_mib": web, "pss_mib": web / 2, "processes": 1}
        groups = ("web_workers", "task_workers", "serve", "postgres", "app")
        return {"t_s": t, "memory": dict.fromkeys(groups, memory), "postgres_client_connections": 5}

    # Warms up (fast growth) for half an hour, then stays flat: no leak.
    samples = [sample(60.0 * n, 100 + 2 * min(n, 30)) for n in range(60)]
    found = growth(samples)
    assert found["web_workers.rss_mib"]["per_hour"] > 50
    assert found["web_workers.rss_mib"]["per_hour_second_half"] == 0
    assert (found["web_workers.pss_mib"]["first"], found["web_workers.pss_mib"]["last"]) == (50, 80)
    assert found["postgres_client_connections"] == {"first": 5, "last": 5, "max": 5}


def test_the_pace_spreads_the_rate_over_the_connections():
    assert pace_delay_ms(150, 4) == 27  # 4 connections x 1000/27 ms: about 150 requests/s
    assert pace_delay_ms(1000, 1) == 1
    for rate, connections in ((0, 4), (150, 0)):
        with pytest.raises(BenchError, match="must be positive"):
            pace_delay_ms(rate, connections)
