"""Keep the embedded PostgreSQL alive while `serve` runs: a thread in the serve process.

The process that started the database is responsible for it. When the postmaster dies (the OOM
killer, a crash, a stray `kill`), this notices within `poll_seconds` and starts it again:
PostgreSQL runs crash recovery from its WAL, so every committed write is there, and the API's
next requests reconnect by themselves. Meanwhile they answer 503 with Retry-After, and
/readyz reads the state this writes to `state_file`.

Deaths back off (1 s, 2 s, 4 s, ... between restarts) and are counted: `max_restarts` deaths
within `window_seconds` is a fault restarting will not cure (a full disk, corrupt data, memory
for nothing else), so the supervisor gives up and calls `give_up` with why, to stop serve.

Every serve process attached to the folder runs one. The restart happens under the folder's
start lock and only when no postmaster is running there, so two supervisors (or a `shell`
starting the server on first use) never start a second postmaster on the same folder.
"""

import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from core.say import Say
from pgembedded.errors import EmbeddedPostgresError
from pgembedded.roles import SupervisedServer

MAX_BACKOFF_SECONDS = 30.0


class Supervisor:
    def __init__(
        self,
        server: SupervisedServer,
        *,
        say: Say,
        give_up: Callable[[str], None],
        poll_seconds: float = 0.5,
        max_restarts: int = 5,
        window_seconds: float = 300,
    ):
        self.server = server
        self.say = say
        self.give_up = give_up
        self.poll_seconds = poll_seconds
        self.max_restarts = max_restarts
        self.window_seconds = window_seconds
        self.deaths: deque[float] = deque()
        self.failure: str | None = None  # why it gave up, once it has
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="postgres-supervisor", daemon=True)

    @property
    def state_file(self) -> Path:
        return state_file(self.server.data_dir)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)
        if read_state(self.server.data_dir).get("pid") == os.getpid():
            self.state_file.unlink(missing_ok=True)

    # -- the loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.wait(self.poll_seconds):
            try:
                if self.server.running_pid() is None:
                    self._recover()
            except Exception as error:  # a supervisor that died would say nothing
                self.say(f"The PostgreSQL supervisor hit {error!r}; it carries on")
            if self.failure is not None:
                return

    def _recover(self) -> None:
        """The postmaster is gone: start it again, backing off, until it runs or we give up."""
        while not self._stopping.is_set():
            now = time.monotonic()
            self.deaths.append(now)
            while self.deaths and self.deaths[0] < now - self.window_seconds:
                self.deaths.popleft()
            if len(self.deaths) > self.max_restarts:
                self.failure = (
                    f"PostgreSQL in {self.server.pgdata} died {len(self.deaths)} times within "
                    f"{self.window_seconds:g} s; not restarting it again. See "
                    f"{self.server.log_file} for why, fix that, then start serve again."
                )
                self._write_state("failed")
                self.give_up(self.failure)
                return
            # No wait before the first restart; then 1 s, doubling, for deaths within the window.
            deaths = len(self.deaths)
            backoff = min(2.0 ** (deaths - 2), MAX_BACKOFF_SECONDS) if deaths > 1 else 0
            self._write_state("restarting", deaths=len(self.deaths), backoff_seconds=backoff)
            self.say(
                f"PostgreSQL in {self.server.pgdata} is not running (death {len(self.deaths)} "
                f"of {self.max_restarts} allowed within {self.window_seconds:g} s); "
                f"restarting it{f' in {backoff:g} s' if backoff else ''}"
            )
            if self._stopping.wait(backoff):
                return
            started = time.monotonic()
            try:
                restarted = self.server.restart_if_stopped(self.say)
            except EmbeddedPostgresError as error:
                self.say(f"PostgreSQL did not start: {error}")
                continue  # counts as another death
            self.state_file.unlink(missing_ok=True)  # running again, whoever restarted it
            if restarted:
                self.say(f"PostgreSQL is running again ({time.monotonic() - started:.2f} s)")
            return

    def _write_state(self, state: str, **extra) -> None:
        """For /readyz in every worker process: what the supervisor does, while not running."""
        data = {"state": state, "since": time.time(), "pid": os.getpid(), **extra}
        temporary = self.state_file.with_name(f"{self.state_file.name}.{os.getpid()}")
        try:
            temporary.write_text(json.dumps(data))
            temporary.replace(self.state_file)
        except OSError:  # a full disk, say: /readyz then says "unavailable", no worse
            temporary.unlink(missing_ok=True)


def state_file(data_dir: Path) -> Path:
    return Path(data_dir) / "postgres.supervisor.json"


def read_state(data_dir: Path) -> dict:
    try:
        return json.loads(state_file(data_dir).read_text())
    except (FileNotFoundError, ValueError):
        return {}
