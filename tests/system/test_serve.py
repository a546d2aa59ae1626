"""The README's first command, for real: `manage.py serve` as a process, stopped and started.

These tests start the production server (granian) on the embedded PostgreSQL in a throwaway
data folder, talk to it over HTTP, and stop it with SIGTERM as Ctrl-C or `docker stop` would.
"""

import os
import signal
import subprocess
import time

import pytest

from tests.support.processes import Server, free_port, manage, postgres_running_in


@pytest.fixture
def data_dir(tmp_path):
    yield tmp_path / "data"
    subprocess.run(["pkill", "-KILL", "-f", str(tmp_path)], check=False)


def test_notes_and_the_superuser_survive_a_restart(data_dir, tmp_path):
    first = Server(data_dir, shipped=True)
    token = first.token()
    assert token, "the superuser from DJANGO_SUPERUSER_* can get a token"
    status, note = first.request(
        "POST", "/api/v1/notes", {"title": "kept", "body": "survives restarts"}, token
    )
    assert status == 201
    assert first.stop() == 0, "a clean exit on SIGTERM"
    assert not postgres_running_in(data_dir), "PostgreSQL is stopped with the app"

    second = Server(data_dir, shipped=True)
    status, fetched = second.request("GET", f"/api/v1/notes/{note['id']}", token=second.token())
    assert (status, fetched["body"]) == (200, "survives restarts")
    assert second.stop() == 0

    # Negative control: a fresh data folder has neither the note nor the superuser's data.
    fresh = Server(tmp_path / "fresh", shipped=True, DJANGO_SUPERUSER_USERNAME="")
    assert fresh.token() is None
    assert fresh.stop() == 0


def test_ctrl_c_stops_the_server_and_postgresql_cleanly(data_dir):
    server = Server(data_dir, shipped=True)
    # Ctrl-C in a terminal sends SIGINT to the whole foreground process group. Here the web
    # workers act on it first, as on a busy machine: granian alone then exits 1.
    os.kill(server.process.pid, signal.SIGSTOP)
    os.killpg(server.process.pid, signal.SIGINT)
    time.sleep(0.5)
    os.kill(server.process.pid, signal.SIGCONT)
    assert server.process.wait(timeout=60) == 0
    assert not postgres_running_in(data_dir)
    assert "database system is shut down" in (data_dir / "postgres.log").read_text()


def test_a_second_serve_in_the_same_folder_attaches_and_leaves_the_first_running(data_dir):
    first = Server(data_dir, shipped=True)
    second = Server(data_dir, shipped=True)
    assert second.request("GET", "/readyz")[0] == 200
    assert second.stop() == 0
    assert first.request("GET", "/readyz")[0] == 200, "the first still has its database"
    assert first.stop() == 0
    assert not postgres_running_in(data_dir)


def test_manage_commands_use_the_same_database_with_or_without_serve(data_dir):
    assert manage(data_dir, "migrate", "--noinput").returncode == 0
    created = manage(
        data_dir,
        "createsuperuser",
        "--noinput",
        DJANGO_SUPERUSER_USERNAME="made-by-command",
        DJANGO_SUPERUSER_PASSWORD="another-long-passphrase",
        DJANGO_SUPERUSER_EMAIL="a@example.com",
    )
    assert created.returncode == 0, created.stderr
    assert not postgres_running_in(data_dir), "a command leaves no server behind"

    server = Server(data_dir, shipped=True)
    count_users = "from django.contrib.auth.models import User; print(User.objects.count())"
    while_serving = manage(data_dir, "shell", "--no-imports", "-c", count_users)
    assert while_serving.returncode == 0, while_serving.stderr
    assert while_serving.stdout.strip() == "2", "the command's superuser and serve's"
    psql = manage(data_dir, "dbshell", "--", "-tAc", "SELECT username FROM auth_user ORDER BY 1")
    assert (psql.returncode, psql.stdout.split()) == (0, ["founder", "made-by-command"])
    assert server.stop() == 0
    assert not postgres_running_in(data_dir)


def test_a_weak_superuser_password_stops_start_up_with_one_clear_line(data_dir):
    result = manage(
        data_dir,
        "prepare",
        DJANGO_SUPERUSER_USERNAME="admin",
        DJANGO_SUPERUSER_PASSWORD="password",
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "CommandError: DJANGO_SUPERUSER_PASSWORD is too weak: This password is too common."
    ]


def test_a_deployment_without_a_secret_key_refuses_to_start_in_one_line(data_dir):
    result = manage(data_dir, "serve", DATABASE_URL="postgres://app@db.invalid/app")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: DJANGO_SECRET_KEY is not set")


def test_an_unreachable_database_is_waited_for_then_reported(data_dir):
    result = manage(
        data_dir,
        "prepare",
        DATABASE_URL=f"postgres://app@127.0.0.1:{free_port()}/app",
        DJANGO_SECRET_KEY="x7" * 30 + "-not-a-real-key-just-long-enough",
        DB_WAIT_TIMEOUT="2",
    )
    assert result.returncode == 1
    assert "Waiting for the database" in result.stdout
    assert "did not answer within 2 s" in result.stderr


def test_a_file_store_that_cannot_be_written_stops_start_up_in_one_line(data_dir, tmp_path):
    blocker = tmp_path / "a-file-not-a-folder"
    blocker.write_text("")
    result = manage(data_dir, "prepare", PROTECTED_FILES_DIR=str(blocker / "files"))
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("CommandError: PROTECTED_FILES_DIR") and "not a writable folder" in line
