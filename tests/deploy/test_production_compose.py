"""The production compose file for one big host: replicas behind Caddy, migrate once, backups.

Static checks (dclint, the compose spec's rules, data safety, secrets, the connection budget)
plus the backup service's command run for real, with its environment, against the suite's
PostgreSQL with the wheel's pg_dump.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from secrets import token_urlsafe

import psycopg
import pytest
import yaml

from backups.continuous.protection import SLOT
from pgembedded.programs import binaries
from tests.support.caddy import adapted_caddyfile
from tests.support.container_files import (
    ENV_FILE_ASSIGNMENT,
    INTERPOLATED_NAME,
    POSTGRES_18_VOLUME_PATH,
    default_passwords_in_compose,
    environment_items,
    find_dclint,
    interpolate,
    run_tool,
    tool_or_skip,
)
from tests.support.processes import command_env

REPO = Path(__file__).resolve().parents[2]
PRODUCTION = "compose.production.yaml"
PGBOUNCER = "deploy/compose.pgbouncer.yaml"
CADDYFILE = REPO / "deploy" / "caddy" / "Caddyfile"
# The file names `manage.py backup` writes and `manage.py restore` reads.
BACKUP_NAME = re.compile(r"^(?P<database>.+)-(?P<stamp>\d{8}-\d{6}Z)\.dump$")
RESERVED_CONNECTIONS = 3  # PostgreSQL's superuser_reserved_connections
DEFAULT = re.compile(r"^\$\{(?P<name>[A-Z_]+):-(?P<default>[^}]+)\}$")


def load(name: str) -> dict:
    return yaml.safe_load((REPO / name).read_text())


def default_of(value) -> int:
    """The number behind `${NAME:-3}` (or a plain number)."""
    match = DEFAULT.match(str(value))
    return int(match["default"] if match else value)


@pytest.fixture(scope="module")
def compose() -> dict:
    return load(PRODUCTION)


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def test_production_compose_files_pass_dclint_without_warnings():
    dclint = tool_or_skip("dclint", find_dclint())
    result = run_tool(dclint, PRODUCTION, PGBOUNCER, "--max-warnings", "0", "--no-color")
    assert result.returncode == 0, result.stdout + result.stderr


# --- replicas behind a reverse proxy with TLS ---------------------------------------------------


def test_several_app_replicas_reachable_only_through_caddy(services):
    app = services["app"]
    assert default_of(app["deploy"]["replicas"]) >= 2
    assert "ports" not in app, "only the proxy reaches the replicas"
    published = {(port["published"], port["protocol"]) for port in services["caddy"]["ports"]}
    assert {("80", "tcp"), ("443", "tcp")} <= published
    assert services["caddy"]["depends_on"]["app"]["condition"] == "service_healthy"
    assert "./deploy/caddy/Caddyfile:/etc/caddy/Caddyfile:ro" in services["caddy"]["volumes"]


def test_caddy_proxies_to_every_replica_with_tls_for_the_site_address():
    text = CADDYFILE.read_text()
    assert re.search(r"^\{\$SITE_ADDRESS\} \{$", text, re.MULTILINE), "automatic HTTPS"
    assert re.search(r"dynamic a \{\s+name app\s+port 3003\b", text), "all replicas, by DNS"


def test_the_caddyfile_parses():
    adapted = json.dumps(adapted_caddyfile())
    assert '"dynamic_upstreams"' in adapted and "notes.example.com" in adapted


def test_the_app_knows_tls_is_in_front(services):
    environment = dict(environment_items(services["app"]))
    assert environment["DJANGO_HTTPS"] == "true"
    assert environment["DJANGO_ALLOWED_HOSTS"].startswith("${SITE_ADDRESS:?")
    assert environment["DJANGO_CSRF_TRUSTED_ORIGINS"] == "https://${SITE_ADDRESS}"


# --- one migration before any replica -----------------------------------------------------------


def test_migrate_runs_the_start_sequence_once_and_the_app_waits_for_it(services):
    migrate, app = services["migrate"], services["app"]
    assert migrate["command"] == ["python", "manage.py", "prepare"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["db"]["condition"] == "service_healthy"
    assert app["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert app["depends_on"]["db"]["condition"] == "service_healthy"
    # The same image and configuration: the same database, the same advisory lock.
    for key in ("build", "image", "environment", "secrets"):
        assert migrate[key] == app[key], key


def test_app_containers_are_read_only_with_a_scratch_tmp(services):
    for name in ("app", "migrate"):
        service = services[name]
        assert service["read_only"] is True
        assert service["tmpfs"] == ["/tmp"]
        assert service["cap_drop"] == ["ALL"]


# --- data safety --------------------------------------------------------------------------------


def test_db_data_lives_in_a_named_volume_and_no_port_is_published(compose, services):
    db = services["db"]
    assert "ports" not in db
    assert f"pgdata:{POSTGRES_18_VOLUME_PATH}" in db["volumes"]
    assert "pgdata" in compose["volumes"]


def test_the_backup_service_runs_manage_py_protect_from_the_app_image(compose, services):
    backup, app = services["backup"], services["app"]
    assert backup["depends_on"]["db"]["condition"] == "service_healthy"
    assert backup["volumes"] == ["backups:/backups", "media:/media:ro"], "beside compose.yaml's"
    assert compose["volumes"]["backups"]["external"] is True, "down -v leaves it"
    # The app's image, settings and secrets: the same code and the same database.
    for key in ("build", "image", "secrets"):
        assert backup[key] == app[key], key
    environment = dict(environment_items(backup))
    assert dict(environment_items(app)).items() <= environment.items()
    assert environment["BACKUP_DIR"] == "/backups"
    assert "BACKUP_URL" in environment, "compose.yaml's variables"
    assert backup["command"] == ["python", "manage.py", "protect"]
    assert "entrypoint" not in backup, "no shell of its own"
    assert backup["restart"] == "unless-stopped"
    assert "healthcheck" in backup, "replaces the image's, which asks the web server"
    assert backup["read_only"] is True and backup["cap_drop"] == ["ALL"]
    assert "hba_file=/etc/postgresql/pg_hba.conf" in services["db"]["command"]
    assert compose["configs"] == load("compose.yaml")["configs"], "compose.yaml's db rules"


def backup_service(
    service: dict, *, database: dict, work: Path, **values: str
) -> tuple[list[str], dict[str, str]]:
    """The service's command and environment as compose gives them, with `values` as .env, for
    a container here: the compose network's `db` is `database`, /run/secrets/NAME and /backups
    are files and a folder in `work`."""
    values = {"POSTGRES_DB": database["NAME"], "POSTGRES_USER": database["USER"], **values}
    values.setdefault("SITE_ADDRESS", "notes.example.com")
    secrets = {
        "db_password": database["PASSWORD"] or "",
        "django_secret_key": token_urlsafe(50),
    }
    (work / "secrets").mkdir()
    for name, secret in secrets.items():
        (work / "secrets" / name).write_text(secret)
    environment = {}
    for key, value in environment_items(service):
        if value == "":  # passed through from .env or the shell: not set here
            continue
        value = interpolate(value, values)
        value = value.replace("/run/secrets/", f"{work / 'secrets'}/")
        environment[key] = value.replace("/backups", str(work / "backups"))
    assert environment["DB_HOST"] == "db" and environment["DB_PORT"] == "5432"
    environment |= {"DB_HOST": str(database["HOST"]), "DB_PORT": str(database["PORT"])}
    command = [interpolate(item, values) for item in service["command"]]
    assert command[0] == "python"
    return [sys.executable, *command[1:]], environment


def run_until(command: list[str], environ: dict, log: Path, done, timeout: float = 90) -> str:
    """Run `command` in the checkout until `done(output)`, then SIGTERM; its output."""
    with open(log, "w") as output:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            env=command_env(log.parent / "data", **environ),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + timeout
    try:
        while not done(log.read_text()):
            assert process.poll() is None, f"exited early:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"timed out:\n{log.read_text()}"
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, f"a clean stop:\n{log.read_text()}"
    return log.read_text()


@pytest.mark.django_db
def test_the_backup_service_streams_a_configured_servers_wal_and_takes_a_base_backup(
    services, tmp_path
):
    """`manage.py protect` with the service's environment, against the suite's PostgreSQL as a
    configured server (DB_HOST), as the compose `backup` service runs it against `db`."""
    from django.db import connection

    connection.ensure_connection()
    database = connection.settings_dict
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", [SLOT])
        assert cursor.fetchone() == (0,), f"{SLOT} exists already: another protect on this server?"
    command, environ = backup_service(services["backup"], database=database, work=tmp_path)
    folder = tmp_path / "backups"

    status = []

    def streaming(output: str) -> bool:
        if not list(folder.glob("base/*.json")):
            return False
        if list(folder.glob("wal/*/*.partial")):
            # `status` in the service, as an operator runs it (`docker compose run backup`).
            status.append(run_once([sys.executable, "manage.py", "status"], environ, tmp_path))
            return True
        # The base backup ends on a WAL segment boundary, and an idle server writes no more
        # WAL for seconds (a standby snapshot every 15 s): commit something for it to stream.
        with psycopg.connect(**connection.get_connection_params(), autocommit=True) as other:
            other.execute("SELECT pg_current_xact_id()")
        return False

    try:
        output = run_until(command, environ, tmp_path / "protect.log", streaming)
    finally:
        with connection.cursor() as cursor:  # a slot left behind would keep WAL forever
            cursor.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE slot_name = %s AND NOT active",
                [SLOT],
            )
    assert f"Continuous backups of {database['NAME']} at " in output, output
    [shown] = status
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert f"Archive:     {folder} (WAL streamed by pg_receivewal)" in shown.stdout, shown.stdout
    assert re.search(r"RPO: +\d+ ms \(streaming, \d+ bytes", shown.stdout), shown.stdout
    (base,) = folder.glob("base/*.json")
    assert json.loads(base.read_text())["timeline"] >= 1
    verified = subprocess.run(
        [str(binaries() / "pg_verifybackup"), "--quiet", str(base.with_suffix(""))],
        capture_output=True,
        text=True,
    )
    assert verified.returncode == 0, verified.stderr


@pytest.mark.django_db
def test_with_backup_protection_off_the_backup_service_idles_and_archives_nothing(
    services, tmp_path
):
    """Off in .env turns the service off too; it waits rather than exits, so that
    `restart: unless-stopped` does not start it again and again."""
    from django.db import connection

    assert "BACKUP_PROTECTION" in dict(environment_items(services["backup"]))
    connection.ensure_connection()
    command, environ = backup_service(
        services["backup"], database=connection.settings_dict, work=tmp_path
    )
    environ["BACKUP_PROTECTION"] = "off"  # as compose passes it through from .env
    try:
        output = run_until(command, environ, tmp_path / "protect.log", lambda out: "are off" in out)
    finally:
        with connection.cursor() as cursor:  # the old code made one
            cursor.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE slot_name = %s AND NOT active",
                [SLOT],
            )
    assert "Continuous backups are off (BACKUP_PROTECTION=off)" in output, output
    assert not (tmp_path / "backups").exists(), "nothing archived"


def run_once(command: list[str], environ: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    """A service's command run to its end in this checkout, as `docker compose run` would."""
    return subprocess.run(
        command,
        cwd=REPO,
        env=command_env(tmp_path / "data", **environ),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_backup_service_says_so_and_exits_when_the_database_is_unreachable(services, tmp_path):
    """One clear line and a non-zero exit; compose's `restart: unless-stopped` tries again."""
    database = {
        "HOST": tmp_path / "no-server-here",
        "PORT": 5432,
        "NAME": "keepnotes",
        "USER": "postgres",
        "PASSWORD": "x",
    }
    command, environ = backup_service(services["backup"], database=database, work=tmp_path)
    result = run_once(command, environ, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "CommandError: Cannot start continuous backups of keepnotes at " in result.stderr
    assert "Traceback" not in result.stderr


def test_both_compose_files_run_the_same_backup_service(services):
    development = load("compose.yaml")["services"]["backup"]
    production = services["backup"]
    for key in ("command", "volumes", "healthcheck"):
        assert production[key] == development[key], key
    backup_variables = {"BACKUP_DIR", "BACKUP_URL", "BACKUP_BASE_EVERY", "BACKUP_RETENTION"}
    development_environment = dict(environment_items(development))
    production_environment = dict(environment_items(production))
    for name in backup_variables:
        assert production_environment[name] == development_environment[name], name


# --- secrets ------------------------------------------------------------------------------------


def test_secrets_reach_the_containers_as_files(compose, services):
    assert compose["secrets"] == {
        "db_password": {"environment": "POSTGRES_PASSWORD"},
        "django_secret_key": {"environment": "DJANGO_SECRET_KEY"},
    }
    app = dict(environment_items(services["app"]))
    assert app["DB_PASS_FILE"] == "/run/secrets/db_password"
    assert app["DJANGO_SECRET_KEY_FILE"] == "/run/secrets/django_secret_key"
    assert not {"DB_PASS", "DJANGO_SECRET_KEY", "DATABASE_URL"} & set(app)
    db = dict(environment_items(services["db"]))
    assert db["POSTGRES_PASSWORD_FILE"] == "/run/secrets/db_password"
    assert "POSTGRES_PASSWORD" not in db
    assert dict(environment_items(services["backup"]))["DB_PASS_FILE"] == (
        "/run/secrets/db_password"
    )


def test_no_default_passwords():
    assert default_passwords_in_compose(load(PRODUCTION)) == []
    assert default_passwords_in_compose(load(PGBOUNCER)) == []


def test_every_variable_the_production_files_read_is_documented():
    documented = set()
    for name in (".env.example", "deploy/production.env.example"):
        documented |= {
            match["key"]
            for line in (REPO / name).read_text().splitlines()
            if (match := ENV_FILE_ASSIGNMENT.match(line))
        }
    read = set()
    for name in (PRODUCTION, PGBOUNCER):
        text = (REPO / name).read_text().replace("$$", "")
        read |= {match["name"] for match in INTERPOLATED_NAME.finditer(text)}
        for service in load(name)["services"].values():
            environment = service.get("environment") or {}
            read |= {key for key, value in environment.items() if value is None}
    assert read - documented == set()


# --- connection budget --------------------------------------------------------------------------


def test_the_default_sizes_fit_max_connections(services):
    app = dict(environment_items(services["app"]))
    replicas = default_of(services["app"]["deploy"]["replicas"])
    need = replicas * default_of(app["WEB_CONCURRENCY"]) * default_of(app["WEB_THREADS"])
    assert default_of(app["APP_MAX_INSTANCES"]) == replicas, "checked against the real count"
    (setting,) = [arg for arg in services["db"]["command"] if arg.startswith("max_connections=")]
    max_connections = default_of(setting.removeprefix("max_connections="))
    # Room for migrate, the backup and a psql.
    assert need + 5 <= max_connections - RESERVED_CONNECTIONS, (need, max_connections)


def test_pgbouncer_pools_by_session_and_the_app_releases_connections_per_request(services):
    override = load(PGBOUNCER)["services"]
    pgbouncer = dict(environment_items(override["pgbouncer"]))
    # Transaction pooling would hand the start sequence's session-level advisory lock (and
    # server-side cursors) to other clients.
    assert pgbouncer["POOL_MODE"] == "session"
    pool = default_of(pgbouncer["DEFAULT_POOL_SIZE"])
    (setting,) = [arg for arg in services["db"]["command"] if arg.startswith("max_connections=")]
    assert pool + 5 <= default_of(setting.removeprefix("max_connections=")) - RESERVED_CONNECTIONS
    app = dict(environment_items(override["app"]))
    assert app == {"DB_HOST": "pgbouncer", "DB_CONN_MAX_AGE": "0", "DB_BEHIND_POOLER": "true"}
    assert override["app"]["depends_on"]["pgbouncer"]["condition"] == "service_healthy"
    assert "migrate" not in override, "migrations connect to PostgreSQL directly"


def test_a_point_in_time_restore_of_a_configured_server_wants_its_data_folder_mounted(
    services, tmp_path
):
    """Outside the `restore` service (no PGDATA), `restore --to` on a configured server says
    which command to run instead, and changes nothing."""
    database = {
        "HOST": "db",
        "PORT": 5432,
        "NAME": "keepnotes",
        "USER": "keepnotes",
        "PASSWORD": "x",
    }
    command, environ = backup_service(services["backup"], database=database, work=tmp_path)
    environ.pop("PGDATA", None)
    result = run_once([*command[:2], "restore", "--to", "2026-01-25T10:14:00Z"], environ, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "PGDATA is unset" in result.stderr
    assert "docker compose run --rm restore python manage.py restore --latest" in result.stderr
    assert "Traceback" not in result.stderr
