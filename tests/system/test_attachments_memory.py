"""A 1 GiB attachment, up and down through a real `serve`, costs the app's memory almost nothing:
the body goes from nginx's buffer file to the store in chunks, and nginx sends it back from disk
(or, with no front, the app streams it in chunks). The body is generated as it is sent: the test
holds no 1 GiB either. The rates are printed for the record (docs/performance.md has the
benchmark's), never asserted.
"""

import hashlib
import threading
import time
from pathlib import Path

from bench.soak_memory import sample_memory
from tests.support.attachments import get, upload, zeros
from tests.support.processes import Server

GIB = 2**30
BOUND_MIB = 50


class PeakMemory:
    """The largest RSS (MiB) of the app (serve, its web workers and nginx) and of its web
    workers alone, sampled every 0.1 s while the block runs, and before it."""

    def __init__(self, server: Server, data_dir: Path):
        self.serve = server.process.pid
        self.postmaster = int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
        self.before = self._sample()
        self.peak = dict(self.before)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> dict[str, float]:
        groups = sample_memory(self.serve, self.postmaster)
        return {name: groups[name]["rss_mib"] for name in ("app", "web_workers")}

    def _run(self):
        while not self.done.wait(0.1):
            for name, value in self._sample().items():
                self.peak[name] = max(self.peak[name], value)

    def rise(self, name: str) -> float:
        return self.peak[name] - self.before[name]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()


def zeros_sha256(size: int) -> str:
    digest = hashlib.sha256()
    for chunk in zeros(size):
        digest.update(chunk)
    return digest.hexdigest()


def test_a_1_gib_upload_and_download_raise_the_apps_memory_by_under_50_mb(tmp_path):
    data_dir = tmp_path / "data"
    one_worker = {"WEB_CONCURRENCY": "1", "WEB_THREADS": "2"}
    served = Server(data_dir, ATTACHMENT_MAX_BYTES=str(GIB), **one_worker)
    try:
        token = served.token()
        _, note = served.request("POST", "/api/v1/notes", {"title": "big"}, token=token)
        with PeakMemory(served, data_dir) as upload_memory:
            started = time.monotonic()
            made = upload(served.port, token, note["id"], zeros(GIB), size=GIB, timeout=600)
            upload_seconds = time.monotonic() - started
        assert made.status == 201, made.body
        path = f"/api/v1/notes/{note['id']}/attachments/{made.json()['id']}/content"
        with PeakMemory(served, data_dir) as download_memory:
            started = time.monotonic()
            fronted = get(served.port, path, token, count_only=True, timeout=600)
            download_seconds = time.monotonic() - started
    finally:
        assert served.stop() == 0

    alone = Server(data_dir, WEB_FRONT="none", **one_worker)
    try:
        with PeakMemory(alone, data_dir) as streamed_memory:
            started = time.monotonic()
            streamed = get(alone.port, path, token, count_only=True, timeout=600)
            streamed_seconds = time.monotonic() - started
    finally:
        assert alone.stop() == 0

    digest = zeros_sha256(GIB)
    assert made.json()["sha256"] == digest and made.json()["size"] == GIB
    assert (fronted.status, fronted.size, fronted.sha256) == (200, GIB, digest)
    assert (streamed.status, streamed.size, streamed.sha256) == (200, GIB, digest)
    rises = {
        "upload": upload_memory,
        "download (nginx)": download_memory,
        "download (app)": streamed_memory,
    }
    print()
    for what, memory, seconds in zip(
        rises, rises.values(), (upload_seconds, download_seconds, streamed_seconds), strict=True
    ):
        print(
            f"1 GiB {what}: {1024 / seconds:.0f} MiB/s; app RSS +{memory.rise('app'):.1f} MiB "
            f"(web workers +{memory.rise('web_workers'):.1f} MiB), before {memory.before}"
        )
    too_much = {what: memory.rise("app") for what, memory in rises.items()}
    assert max(too_much.values()) < BOUND_MIB, too_much
