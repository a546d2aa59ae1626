"""Who may reach the embedded PostgreSQL: only this user, with the superuser's password.

Every connection, over the Unix socket too, must give the superuser's generated password
(`postgres.password`, scram-sha-256): a socket folder in /tmp, or a server run as `nobody`, can
be within reach of other local users, and `trust` would make each of them a superuser. For the
same reason the socket folder must be ours alone, and folders made by older versions (which
trusted socket connections) are moved to passwords on their next start.
"""

import contextlib
import os
import secrets
import stat
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg import sql

from core.env import kept_secret
from pgembedded import programs
from pgembedded.errors import EmbeddedPostgresError

# pg_hba.conf lines that name a connection type (the rest are comments, blank, or includes).
_HBA_CONNECTION_TYPES = {"local", "host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc"}


def password_file(data_dir: Path) -> Path:
    """The superuser's password, asked for on every connection (socket and TCP)."""
    return data_dir / "postgres.password"


def password(data_dir: Path) -> str:
    """The superuser's password; made on first use, before initdb gives it to the role."""
    return kept_secret(password_file(data_dir), secrets.token_urlsafe(32))


def private_socket_dir(path: Path, data_dir: Path) -> Path:
    """The socket folder `path`, made if missing; refused unless only we (or our server) own it.

    In /tmp its name can be guessed: another local user may have made it first, to reach
    the server's socket or to put a socket of their own in its place.
    """
    with contextlib.suppress(FileExistsError):  # looked at below, whatever it is
        path.mkdir(mode=0o700)
    status = path.lstat()
    owners = {os.geteuid()}
    if programs.run_as_unprivileged_prefix() is None:  # as root, PostgreSQL runs as nobody
        import pwd

        owners.add(pwd.getpwnam("nobody").pw_uid)
    if stat.S_ISLNK(status.st_mode) or not stat.S_ISDIR(status.st_mode):
        problem = "is not a folder (a symbolic link?)"
    elif status.st_uid not in owners:
        problem = f"belongs to another user (uid {status.st_uid})"
    else:
        if stat.S_IMODE(status.st_mode) & 0o077:
            path.chmod(0o700)  # ours, made under a loose umask
        return path
    where = "" if path.parent == data_dir else f" ({data_dir}/run is too long)"
    raise EmbeddedPostgresError(
        f"{path}, the folder for PostgreSQL's socket{where}, {problem}: someone else may "
        f"have made it to reach the database. Nothing was started. Remove it, or set "
        f"DATA_DIR to a shorter path, then start again."
    )


def require_password(
    *,
    hba: Path,
    superuser: str,
    password: str,
    connect: Callable[..., psycopg.Connection],
    log_file: Path,
) -> None:
    """Folders made by older versions let socket connections in without a password (`trust`):
    give the superuser the generated password, and ask for it from now on (reloaded live).

    `connect(dbname=..., **kwargs)` connects to the server whose pg_hba.conf is `hba`.
    """
    current = hba.read_text()
    secured = _without_trust(current)
    if secured == current:
        return
    with connect(dbname="postgres", autocommit=True) as connection:
        # Hashed here: the password itself never reaches the server, nor its log.
        verifier = connection.pgconn.encrypt_password(
            password.encode(), superuser.encode(), b"scram-sha-256"
        )
        connection.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(superuser), sql.Literal(verifier.decode())
            )
        )
        _replace_file(hba, secured)
        connection.execute("SELECT pg_reload_conf()")
    # The postmaster reloads pg_hba.conf on its own time: wait until it has.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with connect(dbname="postgres", require_auth="none"):
                pass  # still let in without a password
        except psycopg.OperationalError:
            return
        time.sleep(0.02)
    raise EmbeddedPostgresError(
        f"PostgreSQL did not take the new {hba} within 10 s; see {log_file}."
    )


def _without_trust(hba: str) -> str:
    """pg_hba.conf's text with every `trust` method made `scram-sha-256`."""
    lines = []
    for line in hba.splitlines(keepends=True):
        rule, hash_sign, comment = line.partition("#")
        fields = rule.split()
        if fields and fields[0] in _HBA_CONNECTION_TYPES and "trust" in fields[3:]:
            # The method follows the database, user and (for host lines) address fields.
            before, _, after = rule.rpartition("trust")
            line = f"{before}scram-sha-256{after}{hash_sign}{comment}"
        lines.append(line)
    return "".join(lines)


def _replace_file(path: Path, text: str) -> None:
    """Write `path` anew, all at once, keeping its owner (`nobody`, when PostgreSQL runs so)."""
    status = path.stat()
    draft = path.with_name(f".{path.name}.new")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.chown(draft, status.st_uid, status.st_gid)
    draft.rename(path)
