"""`dump --every SECONDS`: a dump now, then one every SECONDS, until SIGTERM or Ctrl-C.

A service can run it from the app image (`docker compose run backup python manage.py dump
--every 86400`): its files are made, named, checksummed and pruned by the same code as
`manage.py dump`. (The compose `backup` service itself runs `protect`.) A failed dump is
reported and tried again sooner (after RETRY_SECONDS at most); earlier dumps are untouched.
SIGTERM (`docker compose stop`) or SIGINT ends the loop at once: while it waits, straight away;
during a dump, pg_dump is stopped and its partial file removed, as for Ctrl-C.
"""

import signal
import time
from collections.abc import Callable

from backups.errors import BackupError

RETRY_SECONDS = 300
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(BaseException):
    """SIGTERM or SIGINT: raised wherever the loop is, so that a backup cleans up as for Ctrl-C.

    A BaseException, like KeyboardInterrupt, so that no `except Exception` swallows it.
    """


def parse_interval(text: str) -> int:
    """`--every`'s value: a whole number of seconds, at least 1."""
    try:
        seconds = int(text.strip())
    except ValueError:
        seconds = 0
    if seconds < 1:
        raise BackupError(
            f"--every takes a whole number of seconds, at least 1 (got {text!r}): e.g. --every "
            f"86400 for a backup a day. For one backup now, leave --every out."
        )
    return seconds


def repeat(
    job: Callable[[], None],
    *,
    every: int,
    failed: Callable[[BackupError], None],
    retry: int = RETRY_SECONDS,
) -> str:
    """Run `job` now, then `every` seconds after each start, until SIGTERM or SIGINT.

    A BackupError from `job` goes to `failed`, and the next try comes `retry` seconds after
    the failed one's start (or `every`, when sooner). Returns the name of the signal that
    stopped it.
    """
    received: list[str] = []

    def on_signal(number: int, frame) -> None:
        received.append(signal.Signals(number).name)
        if len(received) == 1:  # once: a second signal must not interrupt the clean-up
            raise Stopped(received[0])

    previous = {number: signal.signal(number, on_signal) for number in STOP_SIGNALS}
    try:
        while True:
            started = time.monotonic()
            try:
                job()
                pause = every
            except BackupError as error:
                failed(error)
                pause = min(every, retry)
            time.sleep(max(0.0, started + pause - time.monotonic()))
    except Stopped:
        return received[0]
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
