"""Running PostgreSQL's programs with --verbose, telling the user how far they got.

A program's stderr is read as it comes (so it never blocks on a full pipe); every few seconds
its latest step goes to `say`, and its error lines make the message when it fails.
"""

import re
import subprocess
import threading
import time
from collections.abc import Callable

from backups.errors import BackupError
from core.say import Say

PROGRESS_INTERVAL = 5.0


def run_with_progress(
    command: list[str],
    *,
    environ: dict[str, str],
    what: str,
    say: Say | None,
    interval: float,
    describe: Callable[[str], str],
) -> None:
    """Run a --verbose program to its end; every `interval` s tell `say` how far it got."""
    process = subprocess.Popen(
        command,
        env=environ,
        # What the program writes (a dump of password and token hashes) is the owner's alone
        # from its first byte, not only once it is complete.
        umask=0o077,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    progress = Progress(say, interval, describe)
    lines = StderrLines(process.stderr, progress)
    try:
        process.wait()
    finally:
        if process.poll() is None:  # interrupted (Ctrl-C, SIGTERM): the program goes too
            process.kill()
            process.wait()
        progress.stop()
        lines.join()
    if process.returncode != 0:
        reason = error_lines("\n".join(lines.lines)) or f"exit code {process.returncode}"
        raise BackupError(f"{what} failed: {reason}.")


class Progress:
    """Every `interval` s, tell `say` how far a program got: its latest --verbose line."""

    def __init__(self, say: Say | None, interval: float, describe: Callable[[str], str]):
        self.step = "starting"
        self._settled = False
        self._started = time.monotonic()
        self._done = threading.Event()
        self._thread = None
        if say:

            def report() -> None:
                while not self._done.wait(interval):
                    elapsed = time.monotonic() - self._started
                    say(f"  {elapsed:.0f} s: {describe(self.step)}")

            self._thread = threading.Thread(target=report, daemon=True)
            self._thread.start()

    def note(self, line: str) -> None:
        step = line.split(":", 1)[-1].strip()
        if step and not self._settled:
            self.step = step

    def settle(self, step: str) -> None:
        """The last step: later lines no longer change it."""
        self.step, self._settled = step, True

    def stop(self) -> None:
        self._done.set()
        if self._thread:
            self._thread.join()


class StderrLines(threading.Thread):
    """Reads a program's stderr as it comes, keeping the lines and noting each in `progress`."""

    def __init__(self, stream, progress: Progress | None = None):
        super().__init__(daemon=True)
        self.stream, self.progress = stream, progress
        self.lines: list[str] = []
        self.start()

    def run(self) -> None:
        for raw in self.stream:
            line = raw.decode(errors="replace").rstrip()
            self.lines.append(line)
            if self.progress:
                self.progress.note(line)
        self.stream.close()


def error_lines(stderr: str) -> str:
    """The lines of a program's output that say what went wrong (the first four), as one."""
    keep = [
        line.strip()
        for line in stderr.splitlines()
        if re.search(r"\b(error|fatal|detail|hint)\b:", line, re.IGNORECASE)
    ]
    return " ".join(keep[:4]).rstrip(".")
