"""The archive's branches, laid out as `protect` writes them: what a restore lets recovery see,
and what `restore --list` reads from the history files."""

import json
from datetime import UTC, datetime, timedelta

from backups.continuous.archive import Archive
from backups.continuous.branches import branches
from backups.continuous.point_in_time import LocalSource
from backups.continuous.recovery import RESTORE_WAL

START = datetime(2026, 12, 1, tzinfo=UTC)


def chain(archive: Archive, name: str, timeline: int, hours: int, history: str | None) -> None:
    """A chain on `timeline` with one base backup, ended `hours` after START."""
    folder = archive.wal_dir(name)
    folder.mkdir(parents=True)
    segment = f"{timeline:08X}0000000000000003"
    (folder / segment).write_bytes(b"wal")
    if history is not None:
        (folder / f"{timeline:08X}.history").write_text(history)
    ended = START + timedelta(hours=hours)
    base = archive.base_dir / name
    base.mkdir(parents=True)
    (base / "PG_VERSION").write_text("18\n")
    info = {"started": ended.isoformat(), "ended": ended.isoformat(), "timeline": timeline}
    info |= {"start_wal": segment, "chain": name}
    (archive.base_dir / f"{name}.json").write_text(json.dumps(info))


def layout(tmp_path) -> Archive:
    """Timeline 1, then 2 and 3 forked by restores; and an older version's restore that reused
    timeline 2 (its own history, another fork), as before every history file was seen."""
    archive = Archive(tmp_path / "backups")
    chain(archive, "20261201T000000Z", 1, 1, None)
    chain(archive, "20261201T020000Z", 2, 3, "1\t0/3000100\tbefore 2026-12-01 00:30:00+00\n")
    chain(
        archive,
        "20261201T040000Z",
        3,
        5,
        "1\t0/3000100\tbefore ...\n2\t0/3000200\tno recovery target specified\n",
    )
    chain(archive, "20261201T060000Z", 2, 7, "1\t0/3000300\tbefore 2026-12-01 00:50:00+00\n")
    return archive


def restore_wal(archive: Archive, tmp_path, chosen: str) -> dict[str, str]:
    [base] = [backup for backup in archive.base_backups() if backup.chain == chosen]
    assert LocalSource(archive).fill(tmp_path / "scratch", base) == f"cp {RESTORE_WAL}/%f %p"
    folder = tmp_path / "scratch" / RESTORE_WAL
    return {path.name: path.read_text(errors="replace") for path in folder.iterdir()}


def test_recovery_sees_every_branchs_history_and_only_its_own_wal(tmp_path):
    archive = layout(tmp_path)
    files = restore_wal(archive, tmp_path, "20261201T000000Z")
    # Timeline 1's own chain has no history file: with only its own, PostgreSQL would name the
    # restored timeline 2 again. With all of them, it takes 4.
    assert sorted(name for name in files if name.endswith(".history")) == [
        "00000002.history",
        "00000003.history",
    ]
    assert [name for name in files if not name.endswith(".history")] == ["000000010000000000000003"]


def test_a_reused_timeline_restores_with_its_own_history(tmp_path):
    archive = layout(tmp_path)
    files = restore_wal(archive, tmp_path, "20261201T060000Z")
    assert "0/3000300" in files["00000002.history"], "the chosen chain's copy wins"


def test_branches_name_their_fork_and_when_they_were_served(tmp_path):
    found = branches(layout(tmp_path))
    assert [(branch.timeline, branch.fork and branch.fork.parent) for branch in found] == [
        (1, None),
        (2, 1),
        (3, 2),
        (2, 1),
    ]
    assert found[1].fork.lsn == "0/3000100"
    assert found[1].fork.reason == "before 2026-12-01 00:30:00+00"
    assert found[2].served_from == START + timedelta(hours=5)


def test_recovery_follows_the_failovers_of_its_own_chain_and_no_other_branch(tmp_path):
    """A cluster's failovers go on in the chain that protected it (pg_receivewal followed the
    promoted standby's timeline); a restore's branch is another chain, never followed."""
    archive = layout(tmp_path)
    first = archive.wal_dir("20261201T000000Z")
    (first / "000000050000000000000004.partial").write_bytes(b"wal")
    (first / "00000005.history").write_text("1\t0/3000400\tno recovery target specified\n")
    source = LocalSource(archive)
    timelines = {backup.chain: source.timeline(backup, None) for backup in archive.base_backups()}
    assert timelines == {
        "20261201T000000Z": 5,
        "20261201T020000Z": 2,
        "20261201T040000Z": 3,
        "20261201T060000Z": 2,
    }


def test_recovery_gets_the_wal_from_the_base_backups_first_segment_on(tmp_path):
    archive = Archive(tmp_path / "backups")
    chain(archive, "20261201T000000Z", 2, 1, "1\t0/3000100\tbefore ...\n")  # starts at ...03
    folder = archive.wal_dir("20261201T000000Z")
    for name in (
        "000000020000000000000002",  # before the base backup: not needed
        "000000020000000000000004",
        "000000020000000000000005.partial",  # being written: recovery reads it as the segment
        "000000020000000000000003.00000028.backup",
        "SHA256SUMS",
    ):
        (folder / name).write_bytes(b"x")
    assert [path.name for path in archive.segments("20261201T000000Z")] == [
        "000000020000000000000002",
        "000000020000000000000003",
        "000000020000000000000004",
    ]
    files = restore_wal(archive, tmp_path, "20261201T000000Z")
    assert sorted(files) == [
        "00000002.history",
        "000000020000000000000003",
        "000000020000000000000004",
        "000000020000000000000005",
    ]
