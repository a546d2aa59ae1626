"""Backup, restore, status, reset and upgrade, as a user runs them, on real PostgreSQL servers.

Each test gets its own data folder: a copy of one migrated and seeded once per module. The
commands run as `manage.py` processes in that folder; the test holds its embedded server open
meanwhile (they attach to it), and reads the data directly to compare it before and after.
"""

import hashlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import yaml

from backups.dumps.catalogue import BACKUP_NAME, checksum_path, list_backups
from backups.dumps.dump import dump
from backups.dumps.load import load
from backups.dumps.validate import validate
from backups.errors import BackupError
from backups.tools import child_environment
from core.files import human_size
from pgembedded.postgres import EmbeddedPostgres
from pgembedded.programs import binaries, run_as_unprivileged_prefix
from pgembedded.upgrade import find_old_bindir
from tests.support.processes import REPO, command_env, free_port, manage

SECRET_KEY = "test-" + "Zq8xW3vR7tY2uI9oP4aS6dF1gH5jK0lL" * 2
COMPARED_TABLES = ("auth_user", "notes_note", "accounts_apitoken", "django_migrations")
SEED = r"""
INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email,
                       is_staff, is_active, date_joined)
SELECT 'md5$salt$' || md5(i::text), i = 1, 'user' || i, 'Zoë', 'Ørsted-' || i,
       'u' || i || '@example.com', i = 1, true, now() - i * interval '1 day'
FROM generate_series(1, 5) AS i;

INSERT INTO notes_note (owner_id, title, body, tags, created, updated)
SELECT u.id, 'Note ' || i || ' ✓',
       repeat(E'a line with ''quotes'', a tab\t and \\backslashes\n', i % 7) || i,
       ARRAY['tag' || (i % 5), 'démo'], now() - i * interval '1 minute', now()
FROM generate_series(1, 300) AS i JOIN auth_user u ON u.username = 'user' || (1 + i % 5);

INSERT INTO accounts_apitoken (user_id, key_hash, created, expires)
SELECT id, md5(username) || md5(email), now(), now() + interval '30 days' FROM auth_user;
"""


@dataclass
class Site:
    """A data folder with its embedded server held open by the test."""

    data_dir: Path
    server: EmbeddedPostgres

    @property
    def backups(self) -> Path:
        return self.data_dir / "backups"

    def manage(self, *args: str, **extra: str) -> subprocess.CompletedProcess:
        return manage(self.data_dir, *args, **{"BACKUP_DIR": "", "BACKUP_KEEP": "", **extra})

    def manage_with_input(self, text: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO,
            env=command_env(self.data_dir, BACKUP_DIR="", BACKUP_KEEP=""),
            input=text,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def query(self, sql: str, params=None):
        self.server.ensure_running()
        with self.server.connect(autocommit=True) as connection:
            cursor = connection.execute(sql, params)
            return cursor.fetchall() if cursor.description else None

    def fingerprint(self) -> dict[str, tuple[int, str]]:
        """Row count and a checksum of every row's contents, per table."""
        return {
            table: tuple(
                self.query(
                    f"SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' "  # noqa: S608
                    f"ORDER BY t::text), '')) FROM {table} AS t"
                )[0]
            )
            for table in COMPARED_TABLES
        }

    def settings_dict(self) -> dict:
        return {**self.server.connection_settings(), "OPTIONS": {}}

    def backup(self) -> Path:
        """A backup made in this process, when making it is not what the test is about."""
        return dump(settings_dict=self.settings_dict(), folder=self.backups).path


def succeeded(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def written_path(result: subprocess.CompletedProcess) -> Path:
    line = next(line for line in result.stdout.splitlines() if line.startswith("Wrote "))
    return Path(line.removeprefix("Wrote ").split(" (")[0])


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A migrated and seeded data folder, stopped, to copy for each test."""
    data_dir = tmp_path_factory.mktemp("template") / "data"
    succeeded(manage(data_dir, "migrate", "--noinput"))
    server = EmbeddedPostgres(data_dir)
    server.ensure_running()
    with server.connect(autocommit=True) as connection:
        connection.execute(SEED)
    server.leave()
    assert server.running_pid() is None
    return data_dir


@pytest.fixture
def site(template, tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(template, data_dir, symlinks=True)
    server = EmbeddedPostgres(data_dir)
    server.ensure_running()
    yield Site(data_dir, server)
    server.leave()
    server.stop()


# -- backup, wipe, restore -------------------------------------------------------------------


def test_backup_wipe_restore_brings_every_row_back(site):
    before = site.fingerprint()
    assert before["notes_note"][0] == 300 and before["auth_user"][0] == 5

    made = succeeded(site.manage("dump"))
    path = written_path(made)
    assert path.parent == site.backups and BACKUP_NAME.match(path.name)
    assert human_size(path.stat().st_size) in made.stdout, "prints its size"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "holds password hashes: owner only"
    recorded = checksum_path(path).read_text().split()
    assert recorded == [hashlib.sha256(path.read_bytes()).hexdigest(), path.name]
    assert not list(site.backups.glob("*.partial"))

    site.server.leave()
    wiped = succeeded(site.manage("reset_data", "--noinput", "--yes-delete-database"))
    assert "Deleted" in wiped.stdout
    assert not (site.data_dir / "postgres").exists()
    assert path.exists(), "reset_data keeps the backups"

    restored = succeeded(site.manage("load", str(path)))
    assert "no data there yet" in restored.stdout
    assert site.fingerprint() == before, "every row back, byte for byte"
    # Sequences came back too: new rows get fresh ids.
    site.query(
        "INSERT INTO notes_note (owner_id, title, body, tags, created, updated) "
        "SELECT min(id), 'after restore', '', '{}', now(), now() FROM auth_user"
    )
    assert site.query("SELECT count(*) FROM notes_note") == [(301,)]


def test_restore_refuses_a_database_with_data_unless_forced(site):
    before = site.fingerprint()
    path = site.backup()
    site.query("DELETE FROM notes_note WHERE id % 10 = 0")
    site.query("UPDATE auth_user SET first_name = 'changed' WHERE username = 'user2'")
    changed = site.fingerprint()
    assert changed != before

    refused = site.manage("load", str(path))
    assert refused.returncode == 1
    assert "already holds data" in refused.stderr and "--force" in refused.stderr
    assert "notes_note (270 rows)" in refused.stderr
    assert site.fingerprint() == changed, "nothing was changed"

    forced = succeeded(site.manage("load", str(path), "--force"))
    assert site.fingerprint() == before
    # The data it replaced was saved first, and that backup restores too.
    saved = Path(forced.stdout.split("Saved the current data to ")[1].split(" (")[0])
    assert saved != path and saved.exists()
    succeeded(site.manage("load", str(saved), "--force", "--no-backup-first"))
    assert site.fingerprint() == changed


def test_a_backup_from_before_a_migration_restores_into_the_migrated_database(site):
    """The database becomes the backup: tables a later migration added go too."""
    before = site.fingerprint()
    path = site.backup()
    site.query(
        "CREATE TABLE later (id bigserial PRIMARY KEY, user_id int REFERENCES auth_user);"
        "INSERT INTO later (user_id) SELECT id FROM auth_user;"
        "INSERT INTO django_migrations (app, name, applied) VALUES ('notes', '9999_later', now())"
    )
    succeeded(site.manage("load", str(path), "--force"))
    assert site.fingerprint() == before
    assert site.query("SELECT to_regclass('later')") == [(None,)]


def test_load_latest_picks_the_newest_dump_and_needs_a_file_or_latest(site):
    assert "No pg_dump file in" in site.manage("load", "--latest").stderr
    site.backup()
    site.query("DELETE FROM notes_note WHERE id <= 100")
    after_delete = site.fingerprint()
    newest = site.backup()
    site.query("DELETE FROM notes_note")
    result = succeeded(site.manage("load", "--latest", "--force"))
    assert newest.name in result.stdout
    assert site.fingerprint() == after_delete
    assert "Name the dump file" in site.manage("load").stderr


# -- what restore refuses: the existing data stays untouched ----------------------------------


def test_a_truncated_backup_is_refused_and_the_data_is_untouched(site, tmp_path):
    before = site.fingerprint()
    path = site.backup()
    data = path.read_bytes()

    # Cut in the data, no checksum beside it: the table of contents alone still reads fine.
    cut = tmp_path / "cut.dump"
    cut.write_bytes(data[:-1000])
    listing = subprocess.run([binaries() / "pg_restore", "--list", cut], capture_output=True)
    assert listing.returncode == 0, "so reading the table of contents is not enough"
    refused = site.manage("load", str(cut), "--force")
    assert refused.returncode == 1
    assert "is incomplete" in refused.stderr and "Nothing was changed" in refused.stderr
    assert site.fingerprint() == before

    # Truncated in place, its checksum beside it: caught by the checksum.
    path.write_bytes(data[:-100])
    refused = site.manage("load", str(path), "--force")
    assert refused.returncode == 1
    assert "does not match the checksum" in refused.stderr
    assert site.fingerprint() == before
    assert len(list_backups(site.backups)) == 1, "refused before any backup-first"


def test_a_restore_failing_halfway_rolls_back(site, tmp_path):
    """Even past validation, a failure leaves the data as it was: one transaction."""
    before = site.fingerprint()
    path = site.backup()
    cut = tmp_path / "cut.dump"
    cut.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(BackupError) as failure:
        load(path=cut, settings_dict=site.settings_dict())  # no validate() first
    assert "end of file" in str(failure.value)
    assert "Nothing was committed" in str(failure.value)
    assert site.fingerprint() == before


def test_foreign_files_are_refused_and_the_data_is_untouched(site, tmp_path):
    before = site.fingerprint()
    environ = child_environment(site.settings_dict())
    pg_dump = str(binaries() / "pg_dump")

    noise = tmp_path / "photo.dump"
    noise.write_bytes(os.urandom(50_000))
    plain = tmp_path / "plain.sql"
    subprocess.run([pg_dump, "--format=plain", f"--file={plain}"], env=environ, check=True)
    site.query("CREATE DATABASE other")
    other_env = {**environ, "PGDATABASE": "other"}
    subprocess.run(
        [binaries() / "psql", "-qc", "CREATE TABLE t (x int); INSERT INTO t VALUES (1)"],
        env=other_env,
        check=True,
    )
    other = tmp_path / "other.dump"
    subprocess.run([pg_dump, "--format=custom", f"--file={other}"], env=other_env, check=True)

    expected = {
        noise: "is not a pg_dump custom-format backup",
        plain: "is a plain-SQL dump",
        other: "not of this project's database",
        tmp_path / "missing.dump": "does not exist",
    }
    for path, message in expected.items():
        with pytest.raises(BackupError, match=message):
            validate(path)
    refused = site.manage("load", str(other), "--force")
    assert refused.returncode == 1
    one_line = (
        f"CommandError: {other} is a PostgreSQL backup, but not of this project's database (it "
        f"has no django_migrations table; database other). Nothing was changed."
    )
    assert refused.stderr.splitlines() == [one_line]
    assert site.fingerprint() == before
    assert list_backups(site.backups) == [], "refused before any backup-first"


# -- backup options ----------------------------------------------------------------------------


def test_keep_prunes_this_databases_oldest_backups_only(site):
    first = site.backup()
    for stamp in ("20200101-000000Z", "20210101-000000Z", "20220101-000000Z"):
        old = site.backups / f"keepnotes-{stamp}.dump"
        shutil.copy(first, old)
        checksum_path(old).write_text("0  x\n")
    foreign = site.backups / "otherdb-20000101-000000Z.dump"
    foreign.write_bytes(b"PGDMP")
    unrelated = site.backups / "notes.txt"
    unrelated.write_text("mine")

    result = succeeded(site.manage("dump", "--keep", "2"))
    newest = written_path(result)
    remaining = {item.path.name for item in list_backups(site.backups, "keepnotes")}
    assert remaining == {first.name, newest.name}
    assert result.stdout.count("Deleted old dump") == 3
    assert not (site.backups / "keepnotes-20200101-000000Z.dump.sha256").exists()
    assert foreign.exists() and unrelated.exists(), "other files are never touched"

    listed = succeeded(site.manage("dump", "--list"))
    assert first.name in listed.stdout and newest.name in listed.stdout

    refused = site.manage("dump", "--keep", "0")
    assert refused.returncode == 1 and "at least 1" in refused.stderr


def test_long_runs_report_progress(site, tmp_path):
    lines: list[str] = []
    made = dump(
        settings_dict=site.settings_dict(), folder=tmp_path, say=lines.append, interval=0.001
    )
    assert made.path.exists()
    assert any("MB written" in line for line in lines), lines


def test_a_configured_database_url_is_backed_up_and_restored(template, tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(template, data_dir, symlinks=True)
    server = EmbeddedPostgres(data_dir, tcp_port=free_port())
    server.ensure_running()
    try:
        site = Site(data_dir, server)
        before = site.fingerprint()
        password = server.password_file.read_text().strip()
        folder = tmp_path / "elsewhere"
        url = f"postgres://postgres:{password}@127.0.0.1:{server.port}/keepnotes"
        configured = {"DATABASE_URL": url, "DJANGO_SECRET_KEY": SECRET_KEY}

        made = succeeded(site.manage("dump", "--dir", str(folder), **configured))
        assert f"keepnotes at 127.0.0.1:{server.port}" in made.stdout
        path = written_path(made)
        assert path.parent == folder
        # The old form: `backup` of a server no archive here protects made a dump, and still does.
        implied = succeeded(site.manage("backup", "--dir", str(folder), **configured))
        assert "is now `manage.py dump`" in implied.stderr.splitlines()[0]
        assert written_path(implied).parent == folder
        site.query("DELETE FROM notes_note")
        succeeded(site.manage("load", str(path), "--force", **configured))
        assert site.fingerprint() == before

        wrong = {**configured, "DATABASE_URL": url.replace(password, "not-the-password")}
        refused = site.manage("dump", "--dir", str(folder), **wrong)
        assert refused.returncode == 1
        assert "Cannot connect to the database" in refused.stderr
        assert "password authentication failed" in refused.stderr
    finally:
        server.leave()
        server.stop()


# -- status ------------------------------------------------------------------------------------


def test_status_reports_location_version_size_contents_and_last_backup(site):
    path = site.backup()
    report = succeeded(site.manage("status")).stdout
    assert f"embedded PostgreSQL in {site.data_dir / 'postgres'}" in report
    assert "PostgreSQL:  18." in report
    assert "5 users, " in report and ", 300 notes" in report
    assert "Schema:      up to date" in report
    assert f"Last dump:   {path}" in report and "sha256 recorded" in report
    assert "Free disk:" in report

    data = yaml.safe_load(succeeded(site.manage("status", "--json")).stdout)
    assert data["rows"]["notes.note"] == 300 and data["rows"]["auth.user"] == 5
    assert data["database_bytes"] > 1_000_000
    assert data["dumps"]["newest"]["path"] == str(path)
    assert data["last_backup"] == {"kind": "dump", **data["dumps"]["newest"]}
    assert data["last_backup"]["age_seconds"] < 120


def test_status_of_a_folder_without_a_database_creates_none(tmp_path):
    data_dir = tmp_path / "data"
    report = succeeded(manage(data_dir, "status", BACKUP_DIR="")).stdout
    assert "not created yet" in report
    assert "no pg_dump files in" in report and "`manage.py dump` makes one" in report
    assert not (data_dir / "postgres").exists()


# -- reset_data --------------------------------------------------------------------------------


def test_reset_data_refuses_while_the_server_runs(site):
    refused = site.manage("reset_data", "--noinput", "--yes-delete-database")
    assert refused.returncode == 1
    assert "is running" in refused.stderr and "Nothing was deleted" in refused.stderr
    assert site.fingerprint()["notes_note"][0] == 300


def test_reset_data_lists_what_goes_and_needs_the_folder_name(site):
    site.backup()
    site.server.leave()

    wrong = site.manage_with_input("yes\n", "reset_data")
    assert wrong.returncode == 1 and "nothing was deleted" in wrong.stderr
    for listed in ("postgres/", "postgres.log", "postgres.password", "MB)"):
        assert listed in wrong.stdout, listed
    assert f"{site.backups}  (1 backups)" in wrong.stdout, "says what is kept"
    unconfirmed = site.manage("reset_data", "--noinput")
    assert unconfirmed.returncode == 1 and "--yes-delete-database" in unconfirmed.stderr
    assert (site.data_dir / "postgres" / "PG_VERSION").exists()

    succeeded(site.manage_with_input("data\n", "reset_data"))
    assert not (site.data_dir / "postgres").exists()
    assert not list(site.data_dir.glob("postgres.deleting-*"))
    assert (site.data_dir / "secret_key").exists() and len(list_backups(site.backups)) == 1
    assert "Nothing to delete" in succeeded(site.manage("reset_data", "--noinput")).stdout


def test_reset_data_refuses_with_a_configured_database(tmp_path):
    refused = manage(
        tmp_path / "data",
        "reset_data",
        "--noinput",
        "--yes-delete-database",
        DATABASE_URL="postgres://app@db.invalid/app",
        DJANGO_SECRET_KEY=SECRET_KEY,
    )
    assert refused.returncode == 1 and "A database is configured" in refused.stderr


# -- dump --every: a pg_dump on a schedule, for hosts without cron ------------------------------


def start_loop(site: Site, *args: str, log: Path) -> subprocess.Popen:
    """`manage.py dump --every ARGS` on this site, its output in `log`."""
    with open(log, "w") as output:
        return subprocess.Popen(
            [sys.executable, "manage.py", "dump", "--every", *args],
            cwd=REPO,
            env=command_env(site.data_dir, BACKUP_DIR="", BACKUP_KEEP=""),
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def wait_for(condition, what: str, process: subprocess.Popen, log: Path, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"exited before {what}:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"no {what} after {timeout} s:\n{log.read_text()}"
        time.sleep(0.1)


def stop(process: subprocess.Popen, log: Path) -> str:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, log.read_text()
    return log.read_text()


def test_dump_every_dumps_prunes_and_stops_at_sigterm(site, tmp_path):
    site.backups.mkdir()
    old = site.backups / "keepnotes-20200101-000000Z.dump"
    old.write_bytes(b"PGDMP")
    checksum_path(old).write_text("0  x\n")
    log = tmp_path / "loop.log"
    loop = start_loop(site, "1", "--keep", "2", log=log)
    wait_for(lambda: log.read_text().count("Wrote ") >= 3, "third backup", loop, log)
    output = stop(loop, log)

    assert "every 1 s, keeping the newest 2" in output
    assert "deleted 1 older" in output, "the planted old backup went at the first prune"
    assert "Stopped (SIGTERM)" in output
    kept = list_backups(site.backups)
    assert len(kept) == 2 and old not in [item.path for item in kept]
    assert sorted(path.name for path in site.backups.iterdir()) == sorted(
        name for item in kept for name in (item.path.name, item.checksum_path.name)
    ), "no partial file, no orphaned checksum"
    assert validate(kept[-1].path).checksum_verified, "what `load` reads"


def test_sigterm_during_a_backup_stops_pg_dump_and_leaves_no_partial_file(site, tmp_path):
    log = tmp_path / "loop.log"
    site.server.ensure_running()
    with site.server.connect() as blocker:
        # pg_dump waits for this lock with its file open: a backup caught in the middle.
        blocker.execute("LOCK TABLE notes_note IN ACCESS EXCLUSIVE MODE")
        loop = start_loop(site, "3600", log=log)
        wait_for(lambda: list(site.backups.glob("*.partial")), "partial file", loop, log)
        [partial] = site.backups.glob("*.partial")
        partial_mode = stat.S_IMODE(partial.stat().st_mode)
        output = stop(loop, log)
    assert partial_mode == 0o600, "owner only while pg_dump writes it, not only once complete"
    assert "Stopped (SIGTERM)" in output
    assert list(site.backups.iterdir()) == [], "the half-written backup was removed"
    assert site.fingerprint()["notes_note"][0] == 300


@pytest.mark.parametrize("interval", ["0", "abc", "-5"])
def test_dump_every_refuses_a_bad_interval_before_doing_anything(tmp_path, interval):
    refused = manage(tmp_path / "data", "dump", "--every", interval, BACKUP_DIR="")
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        f"CommandError: --every takes a whole number of seconds, at least 1 (got {interval!r}): "
        f"e.g. --every 86400 for a backup a day. For one backup now, leave --every out."
    ]
    assert not (tmp_path / "data" / "postgres").exists(), "no database was started"


# -- upgrade_data ------------------------------------------------------------------------------

OLD_SERVER = next(
    (
        (version, found)
        for version in ("17", "16", "15", "14")
        if (found := find_old_bindir(version))
    ),
    None,
)


@pytest.mark.skipif(OLD_SERVER is None, reason="no older PostgreSQL installed to upgrade from")
def test_upgrade_data_moves_an_older_major_folder_to_18_and_keeps_the_old(tmp_path):
    prefix = run_as_unprivileged_prefix()
    if prefix is None:
        pytest.skip("as root without user namespaces the old server cannot run here")
    version, old_bin = OLD_SERVER
    data_dir = tmp_path / "data"
    pgdata, sockets = data_dir / "postgres", data_dir / "run"
    sockets.mkdir(parents=True)

    def old(program: str, *args) -> None:
        subprocess.run([*prefix, old_bin / program, *args], check=True, capture_output=True)

    old("initdb", "-D", pgdata, "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8", "-A", "trust")
    old("pg_ctl", "-D", pgdata, "-o", f"-k {sockets} -c listen_addresses=", "-l",
        data_dir / "old.log", "-w", "start")  # fmt: skip
    with psycopg.connect(host=str(sockets), user="postgres", autocommit=True) as connection:
        connection.execute("CREATE DATABASE keepnotes")
    with psycopg.connect(host=str(sockets), user="postgres", dbname="keepnotes") as connection:
        connection.execute(
            "CREATE TABLE kept AS SELECT i, md5(i::text) AS h FROM generate_series(1, 500) i"
        )
    expected = [(500, 125250)]

    running = manage(data_dir, "upgrade_data")
    assert running.returncode == 1 and "is running" in running.stderr
    old("pg_ctl", "-D", pgdata, "-m", "fast", "-w", "stop")

    assert f"holds PostgreSQL {version} data" in succeeded(manage(data_dir, "status")).stdout
    wrong = manage(data_dir, "upgrade_data", "--old-bindir", str(tmp_path))
    assert wrong.returncode == 1 and "no PostgreSQL server program" in wrong.stderr
    assert (pgdata / "PG_VERSION").read_text().strip() == version, "nothing was changed"

    upgraded = succeeded(manage(data_dir, "upgrade_data"))
    assert "now holds PostgreSQL 18" in upgraded.stdout
    assert (pgdata / "PG_VERSION").read_text().strip() == "18"
    kept = data_dir / f"postgres-{version}"
    assert (kept / "PG_VERSION").read_text().strip() == version, "the old data is kept"
    assert not (data_dir / "postgres.upgrading").exists()

    server = EmbeddedPostgres(data_dir)
    server.ensure_running()
    try:
        with server.connect() as connection:
            assert connection.execute("SELECT count(*), sum(i) FROM kept").fetchall() == expected
    finally:
        server.leave()
    assert "nothing to do" in succeeded(manage(data_dir, "upgrade_data")).stdout
