"""Processes: whether one still runs, and children that never outlive their parent."""

import contextlib
import ctypes
import functools
import os
from pathlib import Path


def _set_parent_death_signal(signum: int) -> None:
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the parent stops it itself
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signum)  # PR_SET_PDEATHSIG


def signal_when_parent_dies(signum: int):
    """A `preexec_fn`: the child gets `signum` when the process that started it dies, even of
    SIGKILL (Linux), so that nothing it started outlives it."""
    return functools.partial(_set_parent_death_signal, signum)


def process_alive(pid: int) -> bool:
    """`pid` runs: it exists (whoever owns it) and is not a zombie waiting to be reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """Killed, but not reaped yet (where init is slow to reap orphans, e.g. in containers)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]
