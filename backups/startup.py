"""Starting the continuous protection from `serve` (server/management/commands/serve.py).

It runs as its own process, `manage.py protect`, not as a thread of `serve`: gunicorn's arbiter
reaps every child of its process (waitpid(-1) on SIGCHLD), so a program the protection ran
there could look as if it succeeded when it failed. The process goes when `serve` goes, even
on SIGKILL (Linux), and `serve` stops it before it stops PostgreSQL.
"""

import atexit
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable

from django.conf import settings

from backups.catalogue import default_folder
from backups.tools import signal_when_parent_dies


def start_protection(say: Callable[[str], None]) -> subprocess.Popen | None:
    """Start `manage.py protect` in the background (the first start does not wait for it)."""
    if not settings.EMBEDDED_DATABASE:
        return None  # a configured server is protected by its own archiving (docs/data-safety.md)
    if not settings.BACKUP_PROTECTION:
        say("Continuous backups are off (BACKUP_PROTECTION=off): only `backup` protects the data")
        return None
    say(f"Starting continuous backups into {default_folder()}")
    process = subprocess.Popen(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "protect"],
        stdin=subprocess.DEVNULL,
        preexec_fn=signal_when_parent_dies(signal.SIGTERM),
    )
    atexit.register(_stop, process, os.getpid())  # after the server joined: runs before it leaves
    return process


def _stop(process: subprocess.Popen, owner: int) -> None:
    if os.getpid() != owner:
        return  # a forked server worker exiting: the protection is its parent's
    if process.poll() is None:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(30)
