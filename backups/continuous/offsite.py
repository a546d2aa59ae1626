"""Off-site copies in S3-compatible storage (`BACKUP_URL=s3://bucket/prefix`), with barman-cloud.

barman-cloud writes the bucket layout CloudNativePG's Barman Cloud plugin writes
(`<prefix>/<server name>/base/<backup id>/...` and `.../wals/<timeline+log>/<segment>`), so one
restore path reads the archive of every runtime. The WAL comes from the local archive: each
complete segment pg_receivewal wrote is shipped once (`wal/<chain>/SHIPPED` lists them), in order,
and the segment being written is sent as `<name>.partial` every BACKUP_OFFSITE_SECONDS; while the
store is unreachable the segments wait on the local disk and go when it is back.
"""

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.conf import settings

from backups.errors import BackupError
from backups.progress import error_lines
from backups.tools import libpq_environment
from core import env

SHIPPED = "SHIPPED"
# barman-cloud's exit code when it reached the store and the operation itself failed (2 is a
# network error, 4 any other): for barman-cloud-check-wal-archive, "not usable for this WAL".
OPERATION_FAILED = 1


class OffSiteCommandFailed(BackupError):
    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class OffSiteBackup:
    backup_id: str
    ended: datetime
    timeline: int

    @property
    def name(self) -> str:
        return self.backup_id


@dataclass(frozen=True)
class OffSite:
    url: str
    server_name: str
    endpoint: str
    credentials: dict

    def describe(self) -> str:
        return f"{self.url} (server name {self.server_name})"

    # -- running barman-cloud ----------------------------------------------------------------------

    def program(self, name: str) -> str:
        """barman-cloud's scripts sit beside this interpreter (the venv's, or the image's)."""
        return str(Path(sys.executable).parent / name)

    def environment(self, settings_dict: dict | None = None) -> dict[str, str]:
        # boto3 needs a region; S3-compatible stores ignore it (AWS_DEFAULT_REGION overrides).
        return {
            "AWS_DEFAULT_REGION": "us-east-1",
            **os.environ,
            **self.credentials,
            **libpq_environment(settings_dict or {}),
        }

    def options(self) -> list[str]:
        return ["--endpoint-url", self.endpoint] if self.endpoint else []

    def run(self, name: str, *args: str, settings_dict: dict | None = None, timeout=600) -> str:
        command = [self.program(name), *self.options(), *args]
        try:
            result = subprocess.run(
                command,
                env=self.environment(settings_dict),
                capture_output=True,
                text=True,
                timeout=timeout,
                umask=0o077,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise BackupError(f"{name} did not finish within {timeout} s") from None
        if result.returncode != 0:
            output = result.stderr + result.stdout
            reason = error_lines(output) or (output.strip().splitlines() or ["?"])[-1]
            raise OffSiteCommandFailed(
                f"{name} failed (exit {result.returncode}): {reason}", result.returncode
            )
        return result.stdout

    # -- what the protection does ------------------------------------------------------------------

    def ship_wal(self, path: Path) -> None:
        self.run(
            "barman-cloud-wal-archive", "--gzip", self.url, self.server_name, str(path), timeout=120
        )

    def takes_new_history(self, timeline: int) -> bool:
        """Before a new history ships anything: whether the store holds no WAL on `timeline`
        or a later one. Another database's would be overwritten, as its segments have the same
        names (a new database starts at timeline 1); a restored one is on a later timeline.
        A store that cannot be checked raises."""
        return self._succeeds(
            "barman-cloud-check-wal-archive",
            *("--timeline", str(timeline), self.url, self.server_name),
        )

    def ship_pending(self, wal_dir: Path, names: list[str]) -> int:
        """Ship the segments in `names` not shipped yet, in order, stopping at the first
        failure (raised); how many went."""
        ledger = wal_dir / SHIPPED
        done = set(ledger.read_text().split()) if ledger.exists() else set()
        count = 0
        for name in names:
            if name in done:
                continue
            self.ship_wal(wal_dir / name)
            with open(ledger, "a") as file:
                file.write(name + "\n")
            count += 1
        return count

    def base_backup(self, settings_dict: dict) -> None:
        """barman-cloud-backup reads the data folder itself, between pg_backup_start and _stop."""
        where = libpq_environment(settings_dict)
        self.run(
            "barman-cloud-backup",
            "--gzip",
            "--host",
            where["PGHOST"],
            "--port",
            where["PGPORT"],
            "--user",
            where["PGUSER"],
            "--dbname",
            "postgres",
            self.url,
            self.server_name,
            settings_dict=settings_dict,
            timeout=3600,
        )

    # -- what a restore needs ----------------------------------------------------------------------

    def backups(self) -> list[OffSiteBackup]:
        listed = json.loads(
            self.run("barman-cloud-backup-list", "--format", "json", self.url, self.server_name)
        )
        found = [
            OffSiteBackup(
                item["backup_id"], parse_barman_time(item["end_time"]), int(item["timeline"])
            )
            for item in listed.get("backups_list", [])
            if item.get("status") == "DONE" and item.get("end_time")
        ]
        return sorted(found, key=lambda backup: backup.ended)

    def restore_base(self, backup: OffSiteBackup, destination: Path) -> None:
        self.run(
            "barman-cloud-restore",
            self.url,
            self.server_name,
            backup.backup_id,
            str(destination),
            timeout=3600,
        )

    def fetch_history(self, name: str, folder: Path) -> bool:
        """The history file `name` into `folder`; False when the store has none by that name."""
        return self._succeeds(
            "barman-cloud-wal-restore", self.url, self.server_name, name, str(folder / name)
        )

    def _succeeds(self, *command: str) -> bool:
        """True when `command` succeeds, False when barman-cloud says the operation failed (not
        found, not usable); anything else (the network, credentials) raises."""
        try:
            self.run(*command, timeout=120)
        except OffSiteCommandFailed as error:
            if error.exit_code == OPERATION_FAILED:
                return False
            raise
        return True

    def restore_command(self) -> str:
        """Run by PostgreSQL (its own user: the program must be reachable by it)."""
        options = " ".join(self.options())
        return (
            f"{self.program('barman-cloud-wal-restore')} {options} {self.url} "
            f"{self.server_name} %f %p"
        )


def parse_barman_time(text: str) -> datetime:
    """barman's times: `Tue Dec  2 07:10:11 2026` (local time), or ISO-8601."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return datetime.strptime(" ".join(text.split()), "%a %b %d %H:%M:%S %Y").astimezone()


def from_settings() -> OffSite | None:
    if not settings.BACKUP_URL:
        return None
    # As values, whether given as such or as *_FILE secrets: barman-cloud's boto3 reads them
    # (and AWS_SESSION_TOKEN, AWS_DEFAULT_REGION, ...) from its environment.
    credentials = {
        "AWS_ACCESS_KEY_ID": env.get_str("AWS_ACCESS_KEY_ID"),
        "AWS_SECRET_ACCESS_KEY": env.get_str("AWS_SECRET_ACCESS_KEY"),
    }
    credentials = {name: value for name, value in credentials.items() if value}
    return OffSite(
        url=settings.BACKUP_URL.rstrip("/"),
        server_name=settings.BACKUP_SERVER_NAME,
        endpoint=env.get_str("BACKUP_ENDPOINT_URL"),
        credentials=credentials,
    )
