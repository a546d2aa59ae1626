"""Loading a dump: replacing the database's contents with the dump's, in one transaction.

pg_restore turns the archive into SQL that psql runs between BEGIN and COMMIT, and COMMIT is
sent only once pg_restore has read the whole file: a failure anywhere (a truncated file, an
error in the database) commits nothing, and the data that was there stays.
"""

import contextlib
import shutil
import subprocess
import time
from pathlib import Path

from backups.dumps.validate import archive_schemas
from backups.errors import BackupError
from backups.progress import PROGRESS_INTERVAL, Progress, StderrLines, error_lines
from backups.tools import child_environment, tool
from core.say import Say

# Tables that `migrate` fills by itself: rows there are not anyone's data.
BOOKKEEPING_TABLES = {"django_migrations", "django_content_type", "auth_permission"}


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
        quoted = f"{_quote(schema)}.{_quote(table)}"
        cursor.execute(f"SELECT count(*) FROM {quoted}")  # noqa: S608 (names from the catalog)
        rows = cursor.fetchone()[0]
        if rows:
            counts[table if schema == "public" else f"{schema}.{table}"] = rows
    return counts


def load(
    *,
    path: Path,
    settings_dict: dict,
    say: Say | None = None,
    interval: float = PROGRESS_INTERVAL,
) -> float:
    """Make the database hold exactly the archive's contents, in one transaction; seconds taken.

    Everything in the archive's schemas (`public` at least) is dropped first, tables the archive
    does not know included (a later migration's): a backup taken before a migration restores
    into a migrated database, and `migrate` then moves it forward. Call `validate` first all the
    same, to fail before touching anything.
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
    assert reader.stdout is not None and writer.stdin is not None, "opened with PIPE"
    progress = Progress(say, interval, describe=lambda step: step)
    reader_lines = StderrLines(reader.stderr, progress)
    writer_lines = StderrLines(writer.stderr)
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
        errors = error_lines("\n".join(writer_lines.lines + reader_lines.lines))
        codes = f"pg_restore exit code {reader.returncode}, psql {writer.returncode}"
        raise BackupError(
            f"The restore failed ({errors or codes}). Nothing was committed: the database is "
            f"as it was before."
        )
    return time.monotonic() - started


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
