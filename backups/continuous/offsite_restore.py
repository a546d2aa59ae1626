"""Restoring from the off-site store: the same point-in-time restore, its files from the bucket.

barman-cloud-restore fetches the base backup; PostgreSQL fetches each WAL segment it needs with
barman-cloud-wal-restore (its restore_command), with the store's credentials in its environment.
The bucket may be this project's own or a CloudNativePG cluster's (the same layout).
"""

import os
from datetime import datetime
from pathlib import Path

from backups.continuous.offsite import OffSite, OffSiteBackup
from backups.errors import BackupError
from core.say import Say


class OffSiteSource:
    def __init__(self, offsite: OffSite):
        self.offsite = offsite

    def describe(self) -> str:
        return self.offsite.describe()

    def choose(self, target: datetime | None) -> OffSiteBackup:
        backups = self.offsite.backups()
        if not backups:
            raise BackupError(
                f"No base backup in {self.describe()}: nothing to restore from. Nothing was "
                f"changed."
            )
        if target is None:
            return backups[-1]
        if target < backups[0].ended:
            raise BackupError(
                f"{target.isoformat()} is before the oldest off-site base backup "
                f"({backups[0].ended.isoformat()}): outside the recoverable window. Nothing was "
                f"changed."
            )
        return [backup for backup in backups if backup.ended <= target][-1]

    def latest(self) -> datetime | None:
        return None  # the newest WAL in the bucket is not listed: no second try (point_in_time)

    def timeline(self, base: OffSiteBackup, target: datetime | None) -> int | str:
        """--to: the base backup's, the branch served at the target (a branch counts here from
        its first off-site base backup). --latest: the newest timeline, the branch served last
        (each restore takes one above all), also before its first off-site base backup."""
        return base.timeline if target is not None else "latest"

    def check(self, base: OffSiteBackup, say: Say) -> None:
        say(f"Restoring off-site base backup {base.backup_id} from {self.describe()}")

    def fill(self, scratch: Path, base: OffSiteBackup) -> str:
        self.offsite.restore_base(base, scratch)
        # PostgreSQL runs the restore_command with this process's environment.
        aws = {k: v for k, v in self.offsite.environment().items() if k.startswith("AWS_")}
        os.environ.update(aws)
        return self.offsite.restore_command()
