"""A crash in the middle of an upload, for real: the server is SIGKILLed while it streams a body
into the store. No row names the partial file, and once the housekeeping has run (every second
here, with a grace of a second) it is gone, as is the file of a deleted attachment, from the
store only: the archive keeps every copy, and the files rows name are untouched.
"""

import os
import socket

from tests.support.file_drills import (
    attachment_rows,
    delete,
    make_note,
    store_files,
    stored_name,
    upload_acked,
)
from tests.support.pitr import power_cut, wait_for_base_backup
from tests.support.processes import Server, wait_until

QUICK_HOUSEKEEPING = {
    "BACKUP_DIR": "",
    "TASK_WORKERS": "1",
    "HOUSEKEEPING_INTERVAL_SECONDS": "1",
    "FILES_ORPHAN_GRACE_SECONDS": "1",
}


def partials(store) -> list:
    return list((store / ".incoming").glob("upload-*.partial"))


def test_a_crash_mid_upload_leaves_no_row_and_the_housekeeping_removes_the_partial(tmp_path):
    data_dir = tmp_path / "data"
    store, archive = data_dir / "files", data_dir / "backups" / "files"
    # Straight to the app server: the front door would read the whole body before the app.
    server = Server(data_dir, shipped=True, WEB_FRONT="none", **QUICK_HOUSEKEEPING)
    try:
        wait_for_base_backup(data_dir / "backups")
        token = server.token()
        note = make_note(server.port, token)
        kept, deleted = os.urandom(50_000), os.urandom(50_000)
        upload_acked(server.port, token, note, kept, "kept.bin")
        gone = upload_acked(server.port, token, note, deleted, "deleted.bin")
        delete(server.port, token, note, gone["id"])

        # Half a body, then nothing: the app is streaming it into the store when the power goes.
        client = socket.create_connection(("127.0.0.1", server.port))
        client.sendall(
            (
                f"POST /api/v1/notes/{note}/attachments?name=cut.bin HTTP/1.1\r\n"
                f"Host: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: application/octet-stream\r\nContent-Length: {4_000_000}\r\n\r\n"
            ).encode()
            + os.urandom(2_000_000)
        )
        wait_until(lambda: partials(store), "the partial upload in the store", timeout=20)
    finally:
        power_cut(server, data_dir)
    client.close()
    assert partials(store)

    server = Server(data_dir, shipped=True, **QUICK_HOUSEKEEPING)
    try:
        wait_until(
            lambda: not partials(store) and store_files(store) == {stored_name(kept)},
            "the housekeeping to remove the partial and the deleted attachment's file",
            timeout=30,
        )
    finally:
        assert server.stop() == 0
    assert attachment_rows(data_dir) == {stored_name(kept)}, "no row for the cut upload"
    assert (store / stored_name(kept)).read_bytes() == kept
    assert store_files(archive) == {stored_name(kept), stored_name(deleted)}, "the archive keeps"
