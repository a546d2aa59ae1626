"""Off-site, for real: `serve` with BACKUP_URL ships base backups, WAL and uploaded files to a
SeaweedFS started here (endpoint and credentials as *_FILE secrets); the store goes down mid-run
and comes back; then the whole data folder, local archive and file store included, is lost, and
`restore --to T` from the bucket brings back exactly the notes acknowledged before T, and the
files their attachments name.
"""

import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from barman import xlog

from backups.continuous.offsite import OffSite
from backups.errors import BackupError
from tests.support.file_drills import delete, make_note, store_files, stored_name, upload_acked
from tests.support.pitr import Writers, lose_folder, power_cut, stored_titles
from tests.support.processes import Server, manage, wait_until
from tests.support.seaweedfs import running_store

BUCKET = "keepnotes-backups"


@pytest.fixture
def store(tmp_path):
    with running_store(tmp_path / "seaweedfs", BUCKET) as store:
        yield store


def files_waiting(server) -> int | None:
    _, body = server.request("GET", "/readyz")
    return body["archive"]["offsite_waiting_files"]


def all_shipped(data_dir) -> bool:
    [chain] = (data_dir / "backups" / "wal").iterdir()
    complete = {path.name for path in chain.iterdir() if xlog.is_wal_file(path.name)}
    listed = (chain / "SHIPPED").read_text().split() if (chain / "SHIPPED").exists() else []
    return complete <= set(listed)


def test_offsite_drill_with_a_store_outage(tmp_path, store):
    data_dir = tmp_path / "data"
    environ = {
        "BACKUP_DIR": "",
        "BACKUP_URL": f"s3://{BUCKET}/app",
        "BACKUP_OFFSITE_SECONDS": "1",
        **store.secrets(tmp_path / "secrets"),
    }
    server = Server(data_dir, shipped=True, **environ)
    try:
        # Done once the protection marks its chain (barman's backup.info appears at the start).
        marker = data_dir / "backups" / "wal"
        wait_until(lambda: list(marker.glob("*/OFFSITE_BASE")), "an off-site base backup")
        token = server.token()
        writers = Writers(server, token, count=3)
        note = make_note(server.port, token)
        files = {name: os.urandom(100_000) for name in ("a", "b", "c")}
        a = upload_acked(server.port, token, note, files["a"], "a.bin")
        acked = time.monotonic()
        key = f"app/keepnotes/files/{stored_name(files['a'])}"
        wait_until(lambda: key in store.keys(BUCKET), "A off-site", timeout=10)
        print(
            f"\noff-site: a file reached the bucket {time.monotonic() - acked:.2f} s after its 201"
        )
        time.sleep(max(0.0, 1.5 - (time.monotonic() - acked)))
        store.stop()  # the outage: writes go on, the WAL and the files wait on the local disk
        upload_acked(server.port, token, note, files["c"], "c.bin")
        time.sleep(1.5)
        # /readyz counts it as waiting for the store (so do `status` and the metrics).
        assert files_waiting(server) == 1
        moment = time.time()
        delete(server.port, token, note, a["id"])
        upload_acked(server.port, token, note, files["b"], "b.bin")
        time.sleep(1.5)
        store.start()
        time.sleep(1.0)
        writers.stop()
        # Everything written is shipped once the store is back: the error clears, every
        # complete segment is listed as shipped, and the one being written is sent again
        # within BACKUP_OFFSITE_SECONDS.
        wait_until(lambda: not (data_dir / "backups" / "last_error.txt").exists(), "catching up")
        wait_until(lambda: all_shipped(data_dir), "every complete segment shipped")
        time.sleep(3)
        status = manage(data_dir, "status", **environ)
        assert "0 WAL segments waiting" in status.stdout, status.stdout + status.stderr
        assert "0 files waiting" in status.stdout, status.stdout
    finally:
        power_cut(server, data_dir)
    lose_folder(data_dir)  # the disk is gone: data, local archive and all

    # The layout CloudNativePG's Barman Cloud plugin writes (<path>/<server name>/base|wals/...),
    # so this restore reads a Kubernetes cluster's bucket the same way (docs/kubernetes.md).
    keys = store.keys(BUCKET)
    assert any(re.fullmatch(r"app/keepnotes/base/\d{8}T\d{6}/backup\.info", key) for key in keys)
    assert any(re.fullmatch(r"app/keepnotes/base/\d{8}T\d{6}/data\.tar\.gz", key) for key in keys)
    assert any(
        re.fullmatch(r"app/keepnotes/wals/[0-9A-F]{16}/[0-9A-F]{24}\.gz", key) for key in keys
    )

    for content in files.values():  # B too, acknowledged while the store was down
        assert f"app/keepnotes/files/{stored_name(content)}" in keys

    target = datetime.fromtimestamp(moment, UTC).isoformat()
    restored = manage(data_dir, "restore", "--to", target, **environ)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "Restored from s3://" in restored.stdout
    # The attachments of T, A and C, from the bucket alone, byte for byte.
    expected = {stored_name(files["a"]): files["a"], stored_name(files["c"]): files["c"]}
    assert store_files(data_dir / "files") == set(expected)
    for name, content in expected.items():
        assert (data_dir / "files" / name).read_bytes() == content
    titles = stored_titles(data_dir)
    before, after = writers.acked_before(moment), writers.sent_after(moment)
    assert len(before) > 10 and after
    assert [title for title in before if titles[title] != 1] == [], "acked before T: once each"
    assert set(titles) & after == set(), "nothing sent after T"

    # The restored database is on a new timeline: its history may ship into the same store.
    server = Server(data_dir, shipped=True, **environ)
    try:
        wait_until(lambda: list(marker.glob("*/OFFSITE_BASE")), "the restored one's off-site base")
    finally:
        power_cut(server, data_dir)
    lose_folder(data_dir)

    # A new, empty database after the lost disk, started before anyone restores: it is
    # protected locally, but sends nothing to the store, whose WAL its own would overwrite.
    objects = store.objects(BUCKET)
    server = Server(data_dir, shipped=True, **environ)
    try:
        error = data_dir / "backups" / "last_error.txt"
        wait_until(
            lambda: error.exists() and "Nothing is sent to s3://" in error.read_text(), "a refusal"
        )
        assert "already holds WAL of timeline 1 or later" in error.read_text()
        [chain] = marker.iterdir()
        assert not (chain / "SHIPPED").exists() and not (chain / "OFFSITE_BASE").exists()
    finally:
        power_cut(server, data_dir)
    assert store.objects(BUCKET) == objects, "the store's copy is as it was"


def test_a_new_history_is_taken_only_by_a_store_without_wal_of_its_timeline(tmp_path, store):
    """barman-cloud-check-wal-archive's three answers, from the real store: yes, no, and "cannot
    tell", which must not read as a store holding another database's WAL."""
    secrets = {
        name.removesuffix("_FILE"): Path(path).read_text().strip()
        for name, path in store.secrets(tmp_path / "secrets").items()
    }
    offsite = OffSite(
        url=f"s3://{BUCKET}/check",
        server_name="keepnotes",
        endpoint=secrets.pop("BACKUP_ENDPOINT_URL"),
        credentials=secrets,
    )
    assert offsite.takes_new_history(1), "an empty store"
    segment = tmp_path / "000000010000000000000003"
    segment.write_bytes(b"WAL of timeline 1")
    offsite.ship_wal(segment)
    assert not offsite.takes_new_history(1), "a new database: timeline 1 again"
    assert offsite.takes_new_history(2), "a restored one, on the next timeline"
    store.stop()
    with pytest.raises(BackupError, match="exit 2"):
        offsite.takes_new_history(2)
