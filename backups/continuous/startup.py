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
import time

from django.conf import settings

from backups.folder import default_folder
from core.processes import signal_when_parent_dies
from core.say import Say


def start_protection(say: Say) -> subprocess.Popen | None:
    """Start `manage.py protect`, and wait until every write from then on can be restored.

    On a history without a base backup yet (a first start, the first after a restore) that is
    once its first base backup is taken: until then a write acknowledged would be in the
    streamed WAL with nothing to replay it onto, lost with the disk. Of a fresh database that
    costs about a second, once (docs/data-safety.md); later starts do not wait."""
    if not settings.EMBEDDED_DATABASE:
        return None  # a configured server is protected by its own archiving (docs/data-safety.md)
    if not settings.BACKUP_PROTECTION:
        say("Continuous backups are off (BACKUP_PROTECTION=off): only `backup` protects the data")
        return None
    say(f"Starting continuous backups into {default_folder()}")
    started = time.monotonic()
    reading, writing = os.pipe()
    process = subprocess.Popen(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "protect", f"--ready-fd={writing}"],
        stdin=subprocess.DEVNULL,
        pass_fds=(writing,),
        preexec_fn=signal_when_parent_dies(signal.SIGTERM),
    )
    atexit.register(_stop, process, os.getpid())  # after the server joined: runs before it leaves
    os.close(writing)
    with os.fdopen(reading) as pipe:
        state = pipe.readline().strip()  # "" when protect exited first: it said why
    if state == "protected":
        say(f"Protected: every write from now on can be restored ({_seconds(started)})")
    elif state not in ("off", "elsewhere"):  # protect says those itself
        say(f"WARNING: continuous backups are not protecting yet ({state or 'protect exited'})")
    return process


def _seconds(started: float) -> str:
    return f"{time.monotonic() - started:.2f} s"


def _stop(process: subprocess.Popen, owner: int) -> None:
    if os.getpid() != owner:
        return  # a forked server worker exiting: the protection is its parent's
    if process.poll() is None:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(30)
