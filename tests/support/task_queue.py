"""Looking at the task queue of a real `serve` from outside: `manage.py shell -c` snippets."""

import json
import subprocess
from pathlib import Path

from tests.support.processes import manage


def shell_json(data_dir: Path, code: str, **extra: str):
    """Run `code` in `manage.py shell`; it prints one JSON value, returned here."""
    result = manage(data_dir, "shell", "--no-imports", "-c", code, **extra)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def task_status(data_dir: Path, task_id: str) -> list[str]:
    """The statuses of the task rows with that id (none, or one)."""
    return shell_json(
        data_dir,
        "import json; from django_tasks_db.models import DBTaskResult as T; "
        f"rows = T.objects.filter(id={task_id!r}); "
        "print(json.dumps(list(rows.values_list('status', flat=True))))",
    )


def worker_pids(serve_pid: int) -> list[int]:
    """The task_worker children of that serve process."""
    found = subprocess.run(
        ["pgrep", "-P", str(serve_pid), "-f", "task_worker"], capture_output=True, text=True
    )
    return [int(pid) for pid in found.stdout.split()]


def process_gone(pid: int) -> bool:
    """Exited: no such process, or a zombie its new parent has not reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"
