"""The task worker processes `serve` runs beside the web server (TASK_WORKERS of them).

Each is `manage.py task_worker` (tasks/), a child of `serve`, started after the start sequence
and before the web server. One that dies is started again; stopping `serve` stops them with
SIGTERM, so each finishes the task it is running (up to TASK_DRAIN_SECONDS, then SIGKILL: that
task runs again on the next start, tasks/liveness.py).
"""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.conf import settings

from core.say import Say

MANAGE_PY = Path(settings.BASE_DIR) / "manage.py"
# A worker that keeps dying is started again at most this often.
RESTART_DELAY_SECONDS = 1.0


class TaskWorkers:
    def __init__(self, count: int, say: Say = print):
        self.count = count
        self.say = say
        self.processes: list[subprocess.Popen] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._watcher = threading.Thread(target=self._watch, name="task-workers", daemon=True)

    def start(self) -> None:
        if self.count < 1:
            return
        self.processes = [self._spawn() for _ in range(self.count)]
        self._watcher.start()
        self.say(f"Started {self.count} task worker(s) (TASK_WORKERS)")

    def _spawn(self) -> subprocess.Popen:
        environ = {**os.environ, "TASK_WORKER_PARENT_PID": str(os.getpid())}
        # A session of their own: a signal to serve's group (Ctrl+C) does not reach them, so
        # each gets exactly one SIGTERM, from stop() (a second one would cut its task short).
        # A serve killed outright leaves none behind: each exits once its parent is gone
        # (TASK_WORKER_PARENT_PID, tasks/worker.py).
        return subprocess.Popen(
            [sys.executable, str(MANAGE_PY), "task_worker", "--no-startup-delay"],
            env=environ,
            start_new_session=True,
        )

    def _watch(self) -> None:
        while not self.stopping.wait(RESTART_DELAY_SECONDS):
            with self._lock:
                for number, process in enumerate(self.processes):
                    if process.poll() is not None and not self.stopping.is_set():
                        self.say(f"Task worker {process.pid} exited: starting another")
                        self.processes[number] = self._spawn()

    def stop(self) -> None:
        """SIGTERM each worker, wait for it to finish its task, SIGKILL what is left."""
        self.stopping.set()
        with self._lock:
            for process in self.processes:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + settings.TASK_DRAIN_SECONDS
            for process in self.processes:
                try:
                    process.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self.say(
                        f"Task worker {process.pid} still busy after TASK_DRAIN_SECONDS: killed"
                    )
                    process.kill()
                    process.wait()
                except ChildProcessError:
                    pass  # reaped already by the web server's own child handling
