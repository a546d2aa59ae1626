"""Retention across two databases in one archive: laid out as `protect` writes it (base backups
with pg_basebackup's manifest, WAL chains), pruned with the real pg_archivecleanup."""

import json
import time
from datetime import UTC, datetime

from backups.continuous.archive import Archive

DAY = 86400


def base_backup(archive: Archive, days_ago: int, chain: str, system: str) -> str:
    ended = datetime.fromtimestamp(time.time() - days_ago * DAY, UTC)
    stamp = ended.strftime("%Y%m%dT%H%M%SZ")
    folder = archive.base_dir / stamp
    folder.mkdir(parents=True)
    manifest = {"PostgreSQL-Backup-Manifest-Version": 2, "System-Identifier": int(system)}
    (folder / "backup_manifest").write_text(json.dumps(manifest))
    info = {"started": ended.isoformat(), "ended": ended.isoformat(), "timeline": 1}
    info |= {"start_wal": "000000010000000000000002", "chain": chain}
    (archive.base_dir / f"{stamp}.json").write_text(json.dumps(info))
    archive.wal_dir(chain).mkdir(parents=True, exist_ok=True)
    return stamp


def test_the_newest_base_backup_of_each_database_outlives_retention(tmp_path):
    archive = Archive(tmp_path / "backups")
    lost_old = base_backup(archive, 20, chain="20261101T000000Z", system="7001")
    lost_last = base_backup(archive, 12, chain="20261101T000000Z", system="7001")
    new_old = base_backup(archive, 10, chain="20261122T000000Z", system="7002")
    new_last = base_backup(archive, 9, chain="20261122T000000Z", system="7002")

    assert sorted(archive.prune(keep_days=7)) == sorted([lost_old, new_old])
    assert [backup.name for backup in archive.base_backups()] == [lost_last, new_last]
    assert [history.system_identifier for history in archive.histories()] == ["7001", "7002"]
    assert archive.wal_dir("20261101T000000Z").is_dir(), "the WAL the lost one's last needs"


def test_one_database_keeps_only_its_newest_past_retention(tmp_path):
    archive = Archive(tmp_path / "backups")
    first = base_backup(archive, 9, chain="20261120T000000Z", system="7001")
    second = base_backup(archive, 8, chain="20261120T000000Z", system="7001")
    newest = base_backup(archive, 1, chain="20261120T000000Z", system="7001")

    assert sorted(archive.prune(keep_days=7)) == sorted([first, second])
    assert [backup.name for backup in archive.base_backups()] == [newest]


def test_pruning_a_whole_old_chain_keeps_its_history_files(tmp_path):
    # Recovery's scan for a free timeline stops at the first missing history file: a pruned
    # chain's must stay, or the next restore may reuse a timeline already used.
    archive = Archive(tmp_path / "backups")
    old_chain, new_chain = "20261101T000000Z", "20261120T000000Z"
    base_backup(archive, 20, chain=old_chain, system="7001")
    base_backup(archive, 9, chain=new_chain, system="7001")
    newest = base_backup(archive, 1, chain=new_chain, system="7001")
    old_wal = archive.wal_dir(old_chain)
    (old_wal / "00000002.history").write_text("1\t0/3000000\tbefore 2026-11-01\n")
    (old_wal / "000000020000000000000003").write_bytes(b"\0" * 16)

    archive.prune(keep_days=7)

    assert [backup.name for backup in archive.base_backups()] == [newest]
    assert not (old_wal / "000000020000000000000003").exists(), "the old chain's WAL goes"
    assert (old_wal / "00000002.history").is_file(), "its history file stays"
