"""A full data disk, for real: `serve` on a small tmpfs the test mounts (as root), then fills.

Before it is full, /readyz, the log and `status` warn (DISK_FREE_WARN_BYTES). Once it is full,
writes get a JSON 503 saying the server is out of space (never a reset or an HTML 500), reads
keep working, `backup` fails clearly and leaves no `.dump`, and nothing acknowledged is lost.
Once space is freed, writes resume with no restart of `serve`.
"""

import base64
import json
import os
import subprocess
import time
import uuid

import pytest

from tests.support.note_writers import Write, all_notes, post_note, problems
from tests.support.processes import Server, manage

DISK_BYTES = 256 * 2**20
WARN_BYTES = 40 * 2**20


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES},mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "--lazy", str(mount)], check=False)


def fill(path, leave_bytes: int) -> None:
    """Write `path` until only `leave_bytes` are free on its file system (or none)."""
    block = os.urandom(2**20)
    with open(path, "ab") as filler:
        while (free := os.statvfs(path).f_bavail * os.statvfs(path).f_frsize) > leave_bytes:
            try:
                filler.write(block[: min(len(block), free - leave_bytes) or 1])
                filler.flush()
            except OSError:
                return


def big_write(number: int) -> Write:
    body = base64.b64encode(os.urandom(60_000)).decode()  # ~80 KB, incompressible
    return Write(key=str(uuid.uuid4()), title=f"big note {number}", body=body)


def test_a_full_disk_refuses_writes_with_json_keeps_reads_and_recovers(small_disk):
    data_dir = small_disk / "data"
    server = Server(
        data_dir,
        DISK_FREE_WARN_BYTES=str(WARN_BYTES),
        BACKUP_PROTECTION="false",  # no WAL stream to the same small disk
        TASK_WORKERS="0",
    )
    serve_pid = server.process.pid
    token = server.token()
    writes = [big_write(number) for number in range(5)]
    for write in writes:
        post_note(server.port, token, write)
    assert [write.status for write in writes] == [201] * 5
    assert server.request("GET", "/readyz")[1]["disk"] == "ok"

    # Nearly full: a warning, before anything fails.
    fill(small_disk / "filler-1", leave_bytes=WARN_BYTES // 2)
    status, ready = server.request("GET", "/readyz")
    assert (status, ready["disk"]) == (200, "low"), ready
    assert "Disk space low" in server.log.read_text()
    status_command = manage(data_dir, "status", DISK_FREE_WARN_BYTES=str(WARN_BYTES))
    assert "WARNING" in status_command.stdout and "free" in status_command.stdout, (
        status_command.stdout + status_command.stderr
    )

    # Full, after a few more writes.
    fill(small_disk / "filler-2", leave_bytes=3 * 2**20)  # a few writes still fit
    statuses, refusal = [], None
    for number in range(5, 400):
        write = big_write(number)
        writes.append(write)
        post_note(server.port, token, write, timeout=30)
        statuses.append(write.status)
        if write.status != 201:
            refusal = write
            break
    assert refusal is not None, "the disk never filled"
    assert refusal.status == 503, statuses[-5:]
    assert refusal.retry_after
    assert "out of disk space" in refusal.detail, refusal
    # Reads keep working.
    status, page = server.request("GET", "/api/v1/notes?limit=5", token=token)
    assert status == 200, page
    # A backup cannot be written: it says so and leaves nothing behind.
    backup = manage(data_dir, "dump")
    said = backup.stdout + backup.stderr
    assert backup.returncode == 1, said
    assert "No space left on device" in said, said
    left = sorted(path.name for path in (data_dir / "backups").glob("*"))
    assert not [name for name in left if ".dump" in name], left

    # Space freed: writes resume, with no restart.
    (small_disk / "filler-1").unlink()
    (small_disk / "filler-2").unlink()
    freed = time.monotonic()
    while True:
        write = big_write(len(writes))
        writes.append(write)
        post_note(server.port, token, write, timeout=30)
        if write.status == 201:
            break
        assert time.monotonic() - freed < 60, write
        time.sleep(0.2)
    resumed_after = time.monotonic() - freed
    assert server.process.poll() is None and server.process.pid == serve_pid

    acknowledged = {write.note_id: write.title for write in writes if write.status == 201}
    notes = all_notes(server, token)
    assert problems(acknowledged, notes) == []
    seen = sorted({str(s) for s in statuses + [w.status for w in writes]})
    postgres_log = (data_dir / "postgres.log").read_text()
    assert "PANIC" not in postgres_log, "PostgreSQL refused the writes, it did not crash"
    refusals_logged = [line for line in postgres_log.splitlines() if "No space left" in line]
    print(
        f"\nfull disk: statuses seen {seen}; {len(acknowledged)} acknowledged, "
        f"{len(acknowledged.keys() & {n['id'] for n in notes})} found; "
        f"writes resumed {resumed_after:.2f} s after space was freed; "
        f"refusal: {json.dumps(refusal.status)} Retry-After {refusal.retry_after}; "
        f"PostgreSQL logged: {refusals_logged[:1]}"
    )
    assert server.stop() == 0
