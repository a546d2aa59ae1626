"""Point-in-time restore, for real: writers create notes over HTTP while `serve` streams the WAL
into the archive; after a power cut and the loss of the whole data folder, `restore --to T` brings
back exactly the notes acknowledged before T, and `restore --latest` every acknowledged note.
"""

import shutil
import time
from datetime import UTC, datetime

from tests.support.pitr import (
    Writers,
    lose_folder,
    power_cut,
    stored_titles,
    wait_for_base_backup,
)
from tests.support.processes import Server, manage

WRITE_SECONDS = 1.5  # before T, and again after it
# What this runtime claims (docs/data-safety.md): an acknowledged note can be lost only if it
# was acknowledged this close to the power cut (pg_receivewal's lag; commits do not wait for it).
RPO_CLAIM_SECONDS = 1.0


def drill(tmp_path, servers, **extra):
    """Write, note T, write on, cut the power, lose .data/postgres: (writers, T, data folder)."""
    data_dir = tmp_path / "data"
    server = Server(data_dir, shipped=True, BACKUP_DIR="", **extra)
    servers.append(server)
    if extra.get("BACKUP_PROTECTION") != "off":
        wait_for_base_backup(data_dir / "backups")
    writers = Writers(server, server.token())
    time.sleep(WRITE_SECONDS)
    moment = time.time()
    time.sleep(WRITE_SECONDS)
    writers.stop()
    writers.cut = time.time()
    power_cut(server, data_dir)
    lose_folder(data_dir / "postgres")
    return writers, moment, data_dir


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat()


def test_restore_to_a_moment_then_to_the_latest_after_losing_the_data_folder(tmp_path, servers):
    writers, moment, data_dir = drill(tmp_path, servers)
    before, after = writers.acked_before(moment), writers.sent_after(moment)
    assert len(before) > 20 and len(after) > 20, "writes on both sides of T"

    started = time.monotonic()
    restored = manage(data_dir, "restore", "--to", iso(moment), BACKUP_DIR="")
    restore_seconds = time.monotonic() - started
    assert restored.returncode == 0, restored.stderr
    titles = stored_titles(data_dir)
    assert [title for title in before if titles[title] != 1] == [], "acked before T: once each"
    assert set(titles) & after == set(), "nothing sent after T"

    # The latest point, on a fresh wipe: every acknowledged note, or report what is missing.
    shutil.rmtree(data_dir / "postgres")
    latest = manage(data_dir, "restore", "--latest", BACKUP_DIR="")
    assert latest.returncode == 0, latest.stderr
    titles = stored_titles(data_dir)
    missing = writers.acked() - set(titles)
    print(
        f"\npitr: {len(writers.acked())} acked, {len(before)} before T; restore --to took "
        f"{restore_seconds:.1f} s; restore --latest missed {len(missing)} acked notes"
    )
    assert missing <= writers.acked_before(writers.cut) - writers.acked_before(
        writers.cut - RPO_CLAIM_SECONDS
    ), f"only notes acknowledged within {RPO_CLAIM_SECONDS} s of the cut may be missing"
    assert all(count == 1 for count in titles.values())

    # And the app serves the restored data, taking a base backup of its new timeline.
    server = Server(data_dir, shipped=True, BACKUP_DIR="")
    servers.append(server)
    status, page = server.request("GET", "/api/v1/notes?limit=1", token=server.token())
    assert status == 200 and page["items"]
    assert server.stop() == 0


def test_without_archiving_the_drill_cannot_restore(tmp_path, servers):
    """Negative control: with BACKUP_PROTECTION=off there is nothing to restore from."""
    writers, moment, data_dir = drill(tmp_path, servers, BACKUP_PROTECTION="off")
    assert writers.acked_before(moment)
    refused = manage(data_dir, "restore", "--to", iso(moment), BACKUP_DIR="")
    assert refused.returncode == 1
    assert "No base backup" in refused.stderr
    assert not (data_dir / "postgres").exists(), "nothing was made up"
