"""Point-in-time restore with files, for real: attachments uploaded and deleted over HTTP while
`serve` protects the data; after a power cut and the loss of the data folder AND the file store,
`restore --to T` brings back the files the rows of T name, byte for byte, and only those, and
`restore --latest` those of the end. A file missing in the archive is one clear error and
changes nothing; `backup --verify-restore` checks the files too, and fails on a damaged copy.
"""

import os
import shutil
import time
from datetime import UTC, datetime

from tests.support.file_drills import (
    attachment_rows,
    delete,
    make_note,
    store_files,
    stored_name,
    upload_acked,
)
from tests.support.pitr import lose_folder, power_cut, wait_for_base_backup
from tests.support.processes import Server, manage, wait_until


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat()


def archived_everything(server: Server) -> bool:
    """/readyz: every WAL byte written is in the archive."""
    _, body = server.request("GET", "/readyz")
    return (body.get("archive") or {}).get("lag_bytes") == 0


def refused(data_dir, *args) -> str:
    """`restore ARGS` fails, changing nothing: its message."""
    result = manage(data_dir, "restore", *args, BACKUP_DIR="")
    assert result.returncode == 1, result.stdout + result.stderr
    assert not (data_dir / "postgres").exists(), "the data folder was not made"
    assert store_files(data_dir / "files") == set(), "the store was not touched"
    return result.stderr


def test_files_come_back_with_the_rows_that_name_them(tmp_path, servers):
    data_dir = tmp_path / "data"
    store, archive = data_dir / "files", data_dir / "backups" / "files"
    server = Server(data_dir, shipped=True, BACKUP_DIR="")
    servers.append(server)
    wait_for_base_backup(data_dir / "backups")
    token = server.token()
    note = make_note(server.port, token)
    a_bytes, b_bytes = os.urandom(300_000), os.urandom(200_000)
    a, b = stored_name(a_bytes), stored_name(b_bytes)

    first = upload_acked(server.port, token, note, a_bytes, "a.bin")
    wait_until(lambda: archived_everything(server), "A's row in the archive", timeout=10)
    moment = time.time()
    wait_until(lambda: time.time() > moment + 0.05, "a moment after T")
    delete(server.port, token, note, first["id"])
    upload_acked(server.port, token, note, b_bytes, "b.bin")
    wait_until(lambda: archived_everything(server), "B's row in the archive", timeout=10)
    power_cut(server, data_dir)
    lose_folder(data_dir / "postgres")
    lose_folder(store)

    # Negative control: without the archive's copies (no file protection), A cannot come back,
    # and the restore says so and changes nothing. (A damaged copy: the drill at the end.)
    archive.rename(archive.with_name("files.aside"))
    message = refused(data_dir, "--to", iso(moment))
    assert "missing or damaged" in message and a in message and "Nothing was changed" in message
    archive.with_name("files.aside").rename(archive)

    restored = manage(data_dir, "restore", "--to", iso(moment), BACKUP_DIR="")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert attachment_rows(data_dir) == {a}
    assert store_files(store) == {a} and (store / a).read_bytes() == a_bytes

    # --latest over the store as it is (holding A): it ends with B alone.
    shutil.rmtree(data_dir / "postgres")
    latest = manage(data_dir, "restore", "--latest", BACKUP_DIR="")
    assert latest.returncode == 0, latest.stdout + latest.stderr
    assert attachment_rows(data_dir) == {b}
    assert store_files(store) == {b} and (store / b).read_bytes() == b_bytes
    assert (archive / a).read_bytes() == a_bytes, "the archive keeps A: a restore may name it"

    # The restore drill checks the files as well: B, intact in the archive; damaged, it fails.
    drill = manage(data_dir, "backup", "--verify-restore", BACKUP_DIR="")
    assert drill.returncode == 0, drill.stdout + drill.stderr
    assert "1 files they name, each intact" in drill.stdout
    (archive / b).chmod(0o600)
    with open(archive / b, "r+b") as copy:
        copy.write(b"\0")
    drill = manage(data_dir, "backup", "--verify-restore", BACKUP_DIR="")
    assert drill.returncode == 1 and b in drill.stderr, drill.stdout + drill.stderr
