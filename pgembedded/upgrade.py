"""Move the embedded data folder from an older PostgreSQL major version to this project's.

pg_upgrade (from the wheel, PostgreSQL 18) needs the old version's own programs too: they are
looked for where package managers put them, or given with --old-bindir. It works on a copy:

1. a new, empty PostgreSQL 18 data folder is made beside the old one (`postgres.upgrading`);
2. `pg_upgrade --copy` checks both, then fills the new one from the old, which it only reads;
3. the old folder is renamed `postgres-<old major>` and kept; the new one becomes `postgres`.

A failure at any step leaves `postgres` as it was.
"""

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from core.files import folder_size, fsync_directory, human_size
from core.say import Say
from pgembedded.postgres import SUPERUSER, EmbeddedPostgres
from pgembedded.programs import MAJOR_VERSION, server_binaries

# Where package managers install a given major version's server programs.
OLD_BINDIR_CANDIDATES = (
    "/usr/lib/postgresql/{version}/bin",  # Debian, Ubuntu (apt install postgresql-15)
    "/usr/pgsql-{version}/bin",  # RHEL, Fedora (PGDG packages)
    "/opt/homebrew/opt/postgresql@{version}/bin",  # Homebrew, Apple silicon
    "/usr/local/opt/postgresql@{version}/bin",  # Homebrew, Intel
    "/Applications/Postgres.app/Contents/Versions/{version}/bin",
)


class UpgradeError(RuntimeError):
    """The upgrade cannot go on; the message says why, and the data folder is unchanged."""


def server_major_version(bindir: Path) -> str | None:
    """The major version of the `postgres` program in `bindir`, or None if there is none."""
    program = bindir / "postgres"
    if not program.is_file():
        return None
    output = subprocess.run(
        [str(program), "--version"], capture_output=True, text=True, check=False
    ).stdout
    match = re.search(r"\(PostgreSQL\)\s+(\d+)", output)
    return match.group(1) if match else None


def find_old_bindir(version: str) -> Path | None:
    for pattern in OLD_BINDIR_CANDIDATES:
        candidate = Path(pattern.format(version=version))
        if server_major_version(candidate) == version:
            return candidate
    return None


def kept_folder(server: EmbeddedPostgres, version: str) -> Path:
    return server.data_dir / f"postgres-{version}"


def upgrade(server: EmbeddedPostgres, *, old_bindir: Path | None = None, say: Say = print) -> Path:
    """pg_upgrade the folder to MAJOR_VERSION; returns where the old data is kept."""
    if not server.is_initialised():
        raise UpgradeError(f"There is no PostgreSQL data in {server.pgdata}: nothing to upgrade.")
    old_version = server.data_version()
    if old_version == MAJOR_VERSION:
        raise UpgradeError(
            f"{server.pgdata} already holds PostgreSQL {MAJOR_VERSION} data: nothing to do."
        )
    if int(old_version) > int(MAJOR_VERSION):
        raise UpgradeError(
            f"{server.pgdata} holds PostgreSQL {old_version} data, newer than this project's "
            f"{MAJOR_VERSION}; pg_upgrade cannot go back. Dump it with PostgreSQL "
            f"{old_version}'s pg_dump and restore it here. Nothing was changed."
        )
    bindir = _old_bindir(old_version, old_bindir)
    kept = kept_folder(server, old_version)
    if kept.exists():
        raise UpgradeError(
            f"{kept} exists already (an earlier upgrade's copy?): move it elsewhere first. "
            f"Nothing was changed."
        )
    needed = folder_size(server.pgdata)
    free = shutil.disk_usage(server.data_dir).free
    if free < needed * 1.2:
        raise UpgradeError(
            f"The upgrade copies the data ({human_size(needed)}) and {server.data_dir} has "
            f"{human_size(free)} free: make room first. Nothing was changed."
        )

    # Held throughout: no process can start either server in this folder meanwhile.
    with server.start_lock():
        if busy := server.in_use():
            raise UpgradeError(f"{busy.capitalize()}: stop it first. Nothing was changed.")
        scratch = server.data_dir / "postgres.upgrading"
        shutil.rmtree(scratch, ignore_errors=True)  # an earlier attempt's leftovers
        work = Path(tempfile.mkdtemp(prefix="keepnotes-upgrade-"))  # short: sockets live here
        try:
            say(f"Creating an empty PostgreSQL {MAJOR_VERSION} data folder in {scratch}")
            _initdb(server, scratch, work, checksums=_has_data_checksums(bindir, server.pgdata))
            new_bindir = server_binaries(server.data_dir)
            upgrade_command = [
                str(new_bindir / "pg_upgrade"),
                f"--old-bindir={bindir}",
                f"--new-bindir={new_bindir}",
                f"--old-datadir={server.pgdata}",
                f"--new-datadir={scratch}",
                f"--username={SUPERUSER}",
                f"--socketdir={work}",
                # The old folder is only read, and kept. (No separate --check run: the real
                # one checks the same things first, and works on the copy anyway.)
                "--copy",
            ]
            say(
                f"Upgrading {server.pgdata} ({human_size(needed)}) from PostgreSQL {old_version} "
                f"to {MAJOR_VERSION} (pg_upgrade --copy)"
            )
            started = time.monotonic()
            _run(server, upgrade_command, [scratch, work, server.pgdata], work)
            say(f"pg_upgrade finished in {time.monotonic() - started:.1f} s")
            server.pgdata.rename(kept)
            scratch.rename(server.pgdata)
            fsync_directory(server.data_dir)
        finally:
            # pg_upgrade leaves delete_old_cluster.sh here, naming the old path: that path is
            # now the new data folder, so the script must not survive.
            shutil.rmtree(work, ignore_errors=True)
    return kept


def _old_bindir(version: str, given: Path | None) -> Path:
    if given is not None:
        found = server_major_version(given)
        if found != version:
            what = f"PostgreSQL {found}'s" if found else "no PostgreSQL server program"
            raise UpgradeError(
                f"{given} holds {what}, but the data is PostgreSQL {version}'s: pass the folder "
                f"with PostgreSQL {version}'s programs (postgres, pg_ctl, ...). Nothing was "
                f"changed."
            )
        return given
    found_dir = find_old_bindir(version)
    if found_dir is None:
        raise UpgradeError(
            f"pg_upgrade needs PostgreSQL {version}'s own programs, which were not found "
            f"({', '.join(p.format(version=version) for p in OLD_BINDIR_CANDIDATES[:2])}, ...). "
            f"Install them (apt install postgresql-{version}, brew install "
            f"postgresql@{version}) and pass --old-bindir if they are elsewhere. Or move the data "
            f"with pg_dump and restore (docs/data-safety.md). Nothing was changed."
        )
    return found_dir


def _has_data_checksums(bindir: Path, pgdata: Path) -> bool:
    """pg_upgrade needs both folders alike; PostgreSQL 18's initdb turns checksums on."""
    output = subprocess.run(
        [str(bindir / "pg_controldata"), str(pgdata)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "LC_ALL": "C"},
    ).stdout
    match = re.search(r"Data page checksum version:\s+(\d+)", output)
    return bool(match and match.group(1) != "0")


def _initdb(server: EmbeddedPostgres, scratch: Path, work: Path, *, checksums: bool) -> None:
    scratch.mkdir(mode=0o700)
    # pg_upgrade brings the old roles over, passwords included; initdb only needs one for now.
    password_file = work / "password"
    password_file.write_text(server.password() + "\n")
    password_file.chmod(0o600)
    _run(
        server,
        [
            str(server_binaries(server.data_dir) / "initdb"),
            f"--pgdata={scratch}",
            f"--username={SUPERUSER}",
            "--encoding=UTF8",
            # The same choices as a new embedded folder; pg_upgrade (16+) carries each
            # database's own locale over from the old folder.
            "--locale-provider=builtin",
            "--locale=C.UTF-8",
            # pg_upgrade connects while it replaces the roles (passwords too) with the old
            # folder's: it gets in without one, over a socket in `work`, which is private. The
            # next start asks for the password on every connection, as for any older folder.
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={password_file}",
            "--data-checksums" if checksums else "--no-data-checksums",
        ],
        [scratch, work],
        work,
    )
    password_file.unlink()


def _run(server: EmbeddedPostgres, command: list[str], paths: list[Path], cwd: Path) -> None:
    # PostgreSQL's programs refuse root: run them the way the embedded server runs.
    process = server._run_postgres_program(
        command,
        paths=paths,
        cwd=cwd,
        # For an old folder that asks for the superuser's password (pg_upgrade connects to it).
        env={**os.environ, "PGPASSWORD": server.password()},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output, _ = process.communicate()
    if process.returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-25:])
        name = Path(command[0]).name
        raise UpgradeError(
            f"{name} failed (exit code {process.returncode}); the data folder is unchanged. "
            f"Its output ends with:\n{tail}"
        )
