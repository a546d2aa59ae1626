"""What the soak samples of each process group: RSS and PSS, from /proc, by what a process is.

The groups are `serve`'s web workers, its task workers, `serve` itself with its other children
(`protect`, `pg_receivewal`), and PostgreSQL with all its processes (bench/soak.py).
"""

from pathlib import Path

from bench.processes import process_tree

GROUPS = {
    "web_workers": "web workers",
    "task_workers": "task workers",
    "serve": "serve itself and its other children (the front door, protect, pg_receivewal)",
    "postgres": "PostgreSQL (all its processes)",
    "app": "the app in all (web + task + serve)",
}


APP_GROUPS = ("web_workers", "task_workers", "serve")


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
            groups["web_workers"].append(pid)  # granian's forks keep serve's command line
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
