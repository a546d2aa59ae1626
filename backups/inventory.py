"""What the backups folder holds, each kind under its own name: for `status` and `backup --list`.

Two kinds of copy live there. Base backups (`backup`, and `serve` daily) with the WAL after
them make the point-in-time window; pg_dump files (`dump`) are portable copies of one moment.
`last_backup` is the newer of the two, whichever kind: what an alert on the age of the newest
copy wants, whether the setup makes base backups, dumps or both.
"""

import time
from datetime import datetime
from pathlib import Path

from backups.continuous.archive import Archive
from backups.dumps.catalogue import Backup, list_backups
from core.files import folder_size, human_age, human_size


def age_seconds(moment: datetime) -> int:
    return round(time.time() - moment.timestamp())


def inventory(folder: Path) -> dict:
    """The base backups, the window and the dumps in `folder`, and the newest copy of any kind."""
    archive = Archive(folder)
    bases = archive.base_backups()
    sizes = [folder_size(backup.path) for backup in bases]
    window = archive.window()
    dumps = list_backups(folder)
    report: dict = {
        "backup_folder": str(folder),
        "base_backups": {"count": len(bases), "bytes": sum(sizes), "newest": None},
        "window": None,
        "dumps": {"count": len(dumps), "bytes": sum(item.size for item in dumps), "newest": None},
        "last_backup": None,
    }
    if bases:
        newest = bases[-1]
        report["base_backups"]["newest"] = {
            "path": str(newest.path),
            "bytes": sizes[-1],
            "taken": newest.ended.isoformat(),
            "age_seconds": age_seconds(newest.ended),
        }
    if window:
        report["window"] = {"earliest": window[0].isoformat(), "latest": window[1].isoformat()}
    if dumps:
        last = dumps[-1]
        report["dumps"]["newest"] = {
            "path": str(last.path),
            "bytes": last.size,
            "taken": last.taken.isoformat(),
            "age_seconds": age_seconds(last.taken),
            "sha256_recorded": last.checksum_path.exists(),
        }
    kinds = [("base backup", report["base_backups"]), ("dump", report["dumps"])]
    newest_of_each = [{"kind": kind} | part["newest"] for kind, part in kinds if part["newest"]]
    if newest_of_each:
        report["last_backup"] = max(
            newest_of_each, key=lambda item: datetime.fromisoformat(item["taken"])
        )
    return report


def inventory_lines(report: dict) -> list[tuple[str, str]]:
    """`status`'s lines for the inventory: base backups, window, dumps."""
    folder, size = report["backup_folder"], human_size
    bases, dumps = report["base_backups"], report["dumps"]
    if bases["newest"]:
        newest = bases["newest"]
        ended = datetime.fromisoformat(newest["taken"]).isoformat(timespec="seconds")
        bases_text = (
            f"{bases['count']} in {folder}/base, {size(bases['bytes'])} in all; the newest "
            f"ended {ended}, {human_age(newest['age_seconds'])} ago"
        )
    else:
        bases_text = f"none in {folder}/base (`serve` takes one, or `manage.py backup`)"
    lines = [("Base backup", bases_text)]  # singular: the labels keep their column
    if report["window"]:
        window = report["window"]
        lines.append(("Window", f"{window['earliest']} to {window['latest']}"))
    if dumps["newest"]:
        last = dumps["newest"]
        checksum = "sha256 recorded" if last["sha256_recorded"] else "no sha256"
        lines.append(("Dumps", f"{dumps['count']} in {folder}, {size(dumps['bytes'])} in all"))
        lines.append(
            (
                "Last dump",
                f"{last['path']}, {size(last['bytes'])}, "
                f"{human_age(last['age_seconds'])} old, {checksum}",
            )
        )
    else:
        lines.append(("Dumps", f"no pg_dump files in {folder} (`manage.py dump` makes one)"))
    return lines


def dump_lines(dumps: list[Backup]) -> list[str]:
    """One line per dump: name, size, when, whether its sha256 is recorded."""
    return [
        f"  {item.path.name}  {human_size(item.size):>9}  {item.taken:%Y-%m-%d %H:%M} UTC  "
        f"{'sha256' if item.checksum_path.exists() else 'no sha256'}"
        for item in dumps
    ]
