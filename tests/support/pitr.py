"""Helpers for the point-in-time restore drills: timed writers, a power cut, the archive on disk."""

import http.client
import json
import os
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pgembedded.postgres import EmbeddedPostgres
from tests.support.processes import Server


@dataclass
class TimedWrite:
    title: str
    sent: float  # time.time() just before the request went out
    acked: float | None = None  # time.time() once its 201 came back; None: no 201


def post(port: int, token: str, write: TimedWrite) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        write.sent = time.time()
        connection.request(
            "POST",
            "/api/v1/notes",
            body=json.dumps({"title": write.title, "body": "pitr"}),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        response.read()
        if response.status == 201:
            write.acked = time.time()
    except (OSError, http.client.HTTPException):
        pass
    finally:
        connection.close()


class Writers:
    """`count` threads creating notes as fast as the server answers, each write timed."""

    def __init__(self, server: Server, token: str, count: int = 4, prefix: str = ""):
        self.prefix = prefix  # distinct titles when one test writes more than once
        self.writes: list[TimedWrite] = []
        self.stopping = threading.Event()
        self.threads = [
            threading.Thread(target=self._write, args=(server.port, token, n), daemon=True)
            for n in range(count)
        ]
        for thread in self.threads:
            thread.start()

    def _write(self, port: int, token: str, writer: int) -> None:
        number = 0
        while not self.stopping.is_set():
            write = TimedWrite(f"{self.prefix}writer {writer} note {number}", sent=time.time())
            self.writes.append(write)
            post(port, token, write)
            number += 1

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def acked_before(self, moment: float) -> set[str]:
        return {write.title for write in self.writes if write.acked and write.acked < moment}

    def sent_after(self, moment: float) -> set[str]:
        return {write.title for write in self.writes if write.sent > moment}

    def acked(self) -> set[str]:
        return {write.title for write in self.writes if write.acked}


def power_cut(server: Server, data_dir: Path) -> None:
    """SIGKILL the app (and pg_receivewal, in its process group) and the postmaster."""
    postmaster = EmbeddedPostgres(data_dir).running_pid()
    os.killpg(server.process.pid, signal.SIGKILL)
    if postmaster is not None:
        os.kill(postmaster, signal.SIGKILL)
    server.process.wait(timeout=10)
    deadline = time.monotonic() + 30
    while EmbeddedPostgres(data_dir).running_pid() and time.monotonic() < deadline:
        time.sleep(0.05)


def stored_titles(data_dir: Path) -> Counter:
    """Every note title in the (stopped) data folder, counted; starts and stops its server."""
    server = EmbeddedPostgres(data_dir)
    server.ensure_running()
    try:
        with server.connect() as connection:
            rows = connection.execute("SELECT title FROM notes_note").fetchall()
    finally:
        server.leave()
    return Counter(title for (title,) in rows)


def wait_for_base_backup(archive_dir: Path, timeout: float = 30) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted((archive_dir / "base").glob("*.json"))
        if found:
            return found[-1].with_suffix("")
        time.sleep(0.1)
    raise AssertionError(f"no base backup in {archive_dir} after {timeout} s")


def lose_folder(path: Path, timeout: float = 15) -> None:
    """Delete `path` as a dead disk would lose it, once the killed processes stop writing."""
    import shutil

    deadline = time.monotonic() + timeout
    while True:
        try:
            shutil.rmtree(path)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
