"""The restore drill, `backup --verify-restore`: restore the newest base backup and its WAL into a
scratch folder, start it there, count every table's rows, compare them with the live database's.

It runs beside a serving app: the scratch server has its own folder, socket and password, in
`DATA_DIR/verify-restore`, deleted once done. Schedule it (cron, a compose service) as often
as the data is worth: a backup that was never restored is a hope, not a backup.
"""

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from backups.continuous.archive import Archive
from backups.continuous.point_in_time import LocalSource, newest_base
from backups.continuous.recovery import recover, write_recovery_settings
from backups.errors import BackupError
from core.env import private_folder
from core.say import Say
from pgembedded.postgres import DATABASE, EmbeddedPostgres


@dataclass(frozen=True)
class Drill:
    base: str
    restored: dict[str, int]
    live: dict[str, int]
    reached: str
    files: int | None = None  # files the restored rows name, each found intact in the archive

    @property
    def missing_tables(self) -> list[str]:
        return sorted(set(self.live) - set(self.restored))


def verify_restore(
    *,
    archive: Archive,
    data_dir: Path,
    live_counts: dict[str, int],
    say: Say,
    check_files: Callable[[psycopg.Connection], int] | None = None,
) -> Drill:
    source = LocalSource(archive)
    base = newest_base(archive)  # of the live database, whose tables the drill compares
    source.check(base, say)
    folder = data_dir / "verify-restore"
    shutil.rmtree(folder, ignore_errors=True)
    private_folder(folder)
    scratch_server = EmbeddedPostgres(folder)
    try:
        scratch = folder / "postgres.restoring"
        restore_command = source.fill(scratch, base)
        scratch.chmod(0o700)
        write_recovery_settings(scratch, restore_command, None, base.timeline)
        say(f"Restoring {base.name} and its WAL into {folder}")
        reached = recover(scratch_server, scratch)
        scratch.rename(scratch_server.pgdata)
        scratch_server.ensure_running()
        with scratch_server.connect(dbname=DATABASE) as connection:
            restored = table_counts(connection.cursor())
            files = check_files(connection) if check_files is not None else None
    finally:
        scratch_server.leave()
        shutil.rmtree(folder, ignore_errors=True)
    if not restored:
        raise BackupError(f"The restored {base.name} has no tables: it cannot be the database.")
    return Drill(base=base.name, restored=restored, live=live_counts, reached=reached, files=files)


def table_counts(cursor) -> dict[str, int]:
    """Rows in every table of the public schema."""
    cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
    counts = {}
    for (table,) in cursor.fetchall():
        cursor.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
        counts[table] = cursor.fetchone()[0]
    return counts
