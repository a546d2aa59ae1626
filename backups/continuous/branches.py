"""The branches of the archive: one per WAL chain, each a timeline PostgreSQL served for a while.

A restore starts a new timeline, forked from a point of an older one; `serve` then protects it
in a new chain, whose first base backup is taken before it reports ready. So a branch is served
from the end of its first base backup until the next branch's, and `restore --to T` restores
the one served at T: the branch of the newest base backup that ended by T.

Where a branch forked comes from its timeline's history file (`<timeline>.history`, which
pg_receivewal fetches into the chain): `<parent>\t<LSN>\t<reason>` on its last line, the reason
naming the restore's target (`before 2026-01-25 10:14:00+00`) or none.
"""

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from barman import xlog

from backups.continuous.archive import Archive, BaseBackup


@dataclass(frozen=True)
class Fork:
    parent: int
    lsn: str
    reason: str


@dataclass(frozen=True)
class Branch:
    chain: str
    timeline: int
    fork: Fork | None  # None: the first timeline of its database (initdb)
    system_identifier: str | None
    base_backups: list[BaseBackup]
    latest: datetime  # its newest restorable point

    @property
    def served_from(self) -> datetime:
        return self.base_backups[0].ended


def read_fork(path: Path) -> Fork | None:
    """The last switch a history file records: where its timeline left its parent."""
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
    except OSError:
        return None
    entries = [line.split("\t") for line in lines if not line.startswith("#")]
    if not entries or len(entries[-1]) < 2:
        return None
    parent, lsn, *reason = entries[-1]
    return Fork(int(parent), lsn.strip(), (reason[0] if reason else "").strip())


def branches(archive: Archive) -> list[Branch]:
    """Every chain with a base backup, as a branch, in the order they were served."""
    by_chain: dict[str, list[BaseBackup]] = {}
    for backup in archive.base_backups():
        by_chain.setdefault(backup.chain, []).append(backup)
    found = []
    for chain, backups in by_chain.items():
        timeline = backups[0].timeline
        wal = archive.newest_wal_time([chain])
        found.append(
            Branch(
                chain=chain,
                timeline=timeline,
                fork=read_fork(archive.wal_dir(chain) / xlog.encode_history_file_name(timeline)),
                system_identifier=backups[0].system_identifier,
                base_backups=backups,
                latest=max(wal, backups[-1].ended) if wal else backups[-1].ended,
            )
        )
    return sorted(found, key=lambda branch: branch.served_from)


def history_files(archive: Archive, chosen: str | None = None) -> list[Path]:
    """Every history file in the archive, of every chain; those of `chosen` last, so that they
    win where an older restore reused a timeline (each chain then holds its own)."""
    chains = sorted(archive.chains(), key=lambda chain: chain == chosen)
    return [path for chain in chains for path in sorted(archive.wal_dir(chain).glob("*.history"))]
