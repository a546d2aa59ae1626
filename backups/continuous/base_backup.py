"""A base backup: pg_basebackup into the archive, checked with pg_verifybackup, or nothing.

Plain format with the WAL it needs streamed in (`-X stream`), so each one is consistent on its
own; a fast checkpoint, so it starts at once. It is written to `<stamp>.partial` and becomes a
base backup only once verified and its `<stamp>.json` written.
"""

import subprocess
from datetime import UTC, datetime

from backups.continuous.archive import Archive, BaseBackup, new_stamp, remove_tree
from backups.errors import BackupError
from backups.progress import error_lines
from backups.tools import child_environment, tool


def take_base_backup(*, archive: Archive, chain: str, settings_dict: dict) -> BaseBackup:
    archive.make_folders()
    stamp = new_stamp()
    final = archive.base_dir / stamp
    partial = archive.base_dir / f"{stamp}.partial"
    remove_tree(partial)
    started = datetime.now(UTC)
    try:
        run(
            [
                str(tool("pg_basebackup")),
                "--pgdata",
                str(partial),
                "--format=plain",
                "--wal-method=stream",
                "--checkpoint=fast",
                "--no-password",
                # `postgres` on the embedded server; the app's own user on another server,
                # which then needs the REPLICATION attribute.
            ],
            settings_dict,
            what="pg_basebackup",
        )
        verify(partial)
        partial.rename(final)
        return archive.record_base_backup(
            final, chain=chain, started=started, ended=datetime.now(UTC)
        )
    finally:
        remove_tree(partial)


def verify(path) -> None:
    """pg_verifybackup: every file against the manifest's checksums, and the WAL it needs."""
    run([str(tool("pg_verifybackup")), "--quiet", str(path)], None, what="pg_verifybackup")


def run(command: list[str], settings_dict: dict | None, *, what: str) -> None:
    environ = child_environment(settings_dict or {})
    environ.pop("PGDATABASE", None)  # a replication connection names no database
    result = subprocess.run(
        command, env=environ, capture_output=True, text=True, umask=0o077, check=False
    )
    if result.returncode != 0:
        reason = error_lines(result.stderr) or result.stderr.strip() or f"exit {result.returncode}"
        raise BackupError(f"{what} failed: {reason}")
