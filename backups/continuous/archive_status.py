"""How far behind the archive is, and what it can restore: for `status` and `/readyz`.

RPO here is what a lost disk would cost now: 0 when the receiver has flushed all the WAL the
server wrote, else how long ago the receiver last wrote (or its own lag while it streams).
"""

import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

from backups.continuous.archive import Archive
from backups.continuous.offsite import SHIPPED
from backups.continuous.protection import (
    APPLICATION,
    SLOT,
    wal_queue_warning,
)


def archive_report(archive: Archive, fetchone, *, running: bool, disk: Path) -> dict:
    """The archive's state; the database part only when the server is `running`.

    `fetchone(sql, params)` runs a query on the server (Django's connection, already open).
    `disk` is the folder on the server's disk, whose free space bounds the WAL the slot keeps:
    the data folder, or on a configured server the archive's (see configured_server.py).
    """
    backups = archive.base_backups()
    window = archive.window()
    report: dict = {
        "target": str(archive.folder),
        "base_backups": len(backups),
        "last_base_backup": backups[-1].ended.isoformat() if backups else None,
        "window": [moment.isoformat() for moment in window] if window else None,
        "last_error": last_error(archive),
        "offsite_waiting_segments": offsite_waiting(archive),
    }
    newest = archive.newest_wal_time()
    if not running:
        report["streaming"] = False
        return report
    row = fetchone(
        "SELECT s.active, pg_current_wal_lsn() - COALESCE(r.flush_lsn, s.restart_lsn), "
        "EXTRACT(EPOCH FROM r.flush_lag), pg_current_wal_lsn() - s.restart_lsn "
        "FROM pg_replication_slots s LEFT JOIN pg_stat_replication r "
        "ON r.pid = s.active_pid AND r.application_name = %s WHERE s.slot_name = %s",
        [APPLICATION, SLOT],
    )
    if row is None:
        report |= {"streaming": False, "unarchived_bytes": None, "rpo_seconds": None}
        return report
    active, unarchived, flush_lag, retained = row
    unarchived, retained = int(unarchived or 0), int(retained or 0)
    rpo: float | None
    if unarchived <= 0:
        rpo = 0.0
    elif active and flush_lag is not None:
        rpo = float(flush_lag)
    else:
        rpo = time.time() - newest.timestamp() if newest else None
    free = shutil.disk_usage(disk).free
    report |= {
        "streaming": bool(active),
        "unarchived_bytes": unarchived,
        "rpo_seconds": round(rpo, 3) if rpo is not None else None,
        "wal_queue_bytes": retained,
        "wal_queue_warning": wal_queue_warning(retained, free),
    }
    return report


def offsite_waiting(archive: Archive) -> int | None:
    """Complete WAL segments not sent off-site yet; None when nothing is sent off-site."""
    chain = archive.current_chain()
    if chain is None or not (archive.wal_dir(chain) / SHIPPED).exists():
        return None
    folder = archive.wal_dir(chain)
    shipped = set((folder / SHIPPED).read_text().split())
    return sum(path.name not in shipped for path in archive.segments(chain))


def last_error(archive: Archive) -> str | None:
    try:
        return archive.error_file.read_text().strip() or None
    except FileNotFoundError:
        return None


def readiness_entry() -> dict | None:
    """`/readyz`'s `archive` entry: reported, never fatal (serving goes on without it); None
    before `serve` first started the protection (nothing archived, nothing to report)."""
    from django.conf import settings

    from backups.folder import default_folder
    from pgembedded.backend.base import embedded_server

    archive = Archive(default_folder())
    if not settings.EMBEDDED_DATABASE or archive.current_chain() is None:
        return None
    if not settings.BACKUP_PROTECTION:
        return {"state": "off"}
    try:
        server = embedded_server()
        report = archive_report(archive, django_fetchone, running=True, disk=server.pgdata)
    except Exception as error:  # a probe must answer whatever happens
        return {"state": "unknown", "error": str(error).splitlines()[0][:200]}
    state = "streaming" if report.get("streaming") else "behind"
    return {
        "state": state,
        "lag_bytes": report.get("unarchived_bytes"),
        "rpo_seconds": report.get("rpo_seconds"),
        "last_base_backup": report["last_base_backup"],
        "offsite_waiting_segments": report["offsite_waiting_segments"],
        "error": report["last_error"],  # shown to staff and DEBUG only (core.health)
        "warning": report.get("wal_queue_warning"),
        "checked": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def django_fetchone(sql: str, params: list):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()
