"""Reading a backup before trusting it: the whole file, without touching any database.

A file that is not a custom-format archive, not of this project's database, truncated, changed
since its checksum was written, or written by a newer pg_dump is refused here, with a message
that says which, so that nothing is dropped for a restore that cannot succeed.

A dump is code: `restore` runs its SQL as the role in DATABASE_URL, the superuser of the embedded
server, and the app runs its triggers and constraints for ever after. So a dump that holds what
`migrate` never makes (functions, triggers, views, other schemas; COPY ... PROGRAM anywhere) is
refused. That stops the known ways of hiding a command in a dump, not a hand-forged archive:
restore only dumps you made (docs/data-safety.md).
"""

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from backups.dumps.catalogue import checksum_path, recorded_checksum, sha256_of
from backups.errors import BackupError
from backups.progress import error_lines
from backups.tools import tool

# Every custom-format archive starts with these bytes.
ARCHIVE_MAGIC = b"PGDMP"

# What a Django schema in `public` is made of, as `pg_restore --list` names it (longest first,
# so that "TABLE DATA" is not read as "TABLE"). Anything else (FUNCTION, PROCEDURE, TRIGGER,
# RULE, VIEW, EVENT TRIGGER, ...) is code PostgreSQL would run for whoever restores or writes.
_ENTRIES = {
    "TABLE", "TABLE DATA", "TABLE ATTACH", "SEQUENCE", "SEQUENCE SET", "SEQUENCE OWNED BY",
    "DEFAULT", "CONSTRAINT", "CHECK CONSTRAINT", "FK CONSTRAINT", "INDEX", "INDEX ATTACH",
    "STATISTICS DATA", "COMMENT", "ACL", "EXTENSION", "SCHEMA",
}  # fmt: skip
ALLOWED_ENTRIES = sorted(_ENTRIES, key=len, reverse=True)
# `-`: no schema (an extension, a comment on one); `public`: Django's tables.
ALLOWED_SCHEMAS = {"-", "public"}
# COPY ... TO/FROM PROGRAM runs a shell command as PostgreSQL's user, in a function body or
# hidden in a string that a constraint evaluates (query_to_xml).
PROGRAM = re.compile(r"\b(?:TO|FROM)\s+PROGRAM\b", re.IGNORECASE)


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
    recorded = recorded_checksum(path)
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
    _refuse_code(path, pg_restore, listing.stdout)
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


def archive_schemas(path: Path) -> list[str]:
    """The schemas the archive holds, by name."""
    listing = subprocess.run(
        [str(tool("pg_restore")), "--list", str(path)], capture_output=True, text=True, check=False
    ).stdout
    return re.findall(r"^\d+; \d+ \d+ SCHEMA - (\S+) ", listing, re.MULTILINE)


def _refuse_code(path: Path, pg_restore: Path, listing: str) -> None:
    """Refuse an archive that holds anything `migrate` does not make, or COPY ... PROGRAM."""
    for entry in re.findall(r"^\d+; \d+ \d+ (.*)$", listing, re.MULTILINE):
        # "TABLE DATA public notes_note postgres", "SCHEMA - public pg_database_owner"
        kind = next((kind for kind in ALLOWED_ENTRIES if entry.startswith(kind + " ")), None)
        schema, _, name = entry.removeprefix(f"{kind} ").partition(" ")
        if (
            kind is None
            or schema not in ALLOWED_SCHEMAS
            or (kind == "SCHEMA" and not name.startswith("public "))
        ):
            raise BackupError(_holds_code(path, entry.rpartition(" ")[0] or entry))
    schema_sql = subprocess.run(
        [str(pg_restore), "--schema-only", "--file=-", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if schema_sql.returncode != 0:
        raise BackupError(_unreadable(path, pg_restore, schema_sql.stderr))
    found = PROGRAM.search(schema_sql.stdout)
    if found:
        raise BackupError(_holds_code(path, f"COPY ... {found.group(0)}"))


def _holds_code(path: Path, what: str) -> str:
    return (
        f"{path} holds {what}, which this project's migrations never make: restoring it would "
        f"run code in the database as the superuser. Restore only dumps you made yourself. "
        f"Nothing was changed."
    )


def _unreadable(path: Path, pg_restore: Path, stderr: str) -> str:
    reason = error_lines(stderr) or "unknown error"
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
