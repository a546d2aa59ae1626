"""The tutorial, for real: build the image, `docker compose up`, log in, write a note, `down`,
`up`, read it back; `down -v` and it is gone. Plus what the image and the stack must not do.

Opt-in and slow (minutes): CONTAINER_TESTS=1 uv run pytest tests/containers -v
The stack fixture (conftest.py) builds and starts it; the data test runs last.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from datetime import UTC, datetime

import pytest

from tests.support.container_http import Browser, form_errors
from tests.support.file_drills import download, make_note, upload_acked

pytestmark = pytest.mark.containers

ADMIN_USER = "e2e-admin"
IMPORT_USER = "e2e-importer"
ARCHIVE_USER = "e2e-archivist"
RESTORE_USER = "e2e-restorer"
LATEST_USER = "e2e-latest"
IMPORT_NOTES = 25
IMPORT_TIMEOUT_SECONDS = 60
# How long a stopped worker leaves an import queued before the test believes it (a worker
# polls every second or so).
QUEUED_CHECK_SECONDS = 4
COMPILERS = ("gcc", "cc", "c++", "g++", "clang", "tcc", "as", "ld", "make")


def test_app_runs_as_non_root_without_privileges_and_the_image_has_no_compiler(stack):
    image = stack.engine.docker("image", "inspect", "-f", "{{.Config.User}}", stack.app_image)
    assert image.stdout.strip() not in {"", "0", "root", "0:0", "root:root"}

    uid, gid = stack.exec("app", "id", "-u").strip(), stack.exec("app", "id", "-g").strip()
    assert (uid, gid) == ("10001", "10001")
    # compose.yaml's cap_drop: ALL and no-new-privileges, as the kernel sees them.
    status = stack.exec("app", "cat", "/proc/1/status")
    assert re.search(r"^CapBnd:\s+0+$", status, re.MULTILINE), status
    assert re.search(r"^NoNewPrivs:\s+1$", status, re.MULTILINE), status

    probe = " ".join(f"command -v {name};" for name in COMPILERS)
    found = stack.engine.docker(
        "run", "--rm", "--network", "none", "--entrypoint", "sh", stack.app_image, "-c",
        f"{probe} true",
    )  # fmt: skip
    assert found.stdout.split() == [], "compilers in the runtime image"


def test_only_the_app_is_published_and_only_on_loopback(stack):
    app = stack.inspect("app")
    assert app["HostConfig"]["PortBindings"] == {
        "3003/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(stack.port)}]
    }

    db = stack.inspect("db")
    assert not db["HostConfig"]["PortBindings"]
    assert all(not bindings for bindings in (db["NetworkSettings"]["Ports"] or {}).values())
    assert "ports" not in stack.config()["services"]["db"]


def test_db_keeps_its_data_in_the_named_volume_at_the_postgres_18_path(stack):
    mounts = [
        (mount["Type"], mount.get("Name"), mount["Destination"])
        for mount in stack.inspect("db")["Mounts"]
    ]
    assert mounts == [("volume", f"{stack.project}_pgdata", "/var/lib/postgresql")]

    pgdata = stack.exec("db", "sh", "-c", 'echo "$PGDATA"; cat "$PGDATA/PG_VERSION"').split()
    assert pgdata == ["/var/lib/postgresql/18/docker", "18"]


def test_an_import_is_run_by_the_worker_service_and_waits_while_it_is_stopped(stack):
    """The `worker` service runs imports (the app's own task workers are off: the override in
    tests/support/container_stack.py); with it stopped, an import stays queued."""
    password = secrets.token_urlsafe(24)
    stack.create_superuser(IMPORT_USER, password)
    token = stack.api_token(IMPORT_USER, password)
    browser = Browser(stack.base_url)
    assert stack.inspect("worker")["Config"]["Image"] == f"{stack.project}-worker"

    tag = f"import-{secrets.token_hex(3)}"
    first = submit_import(browser, token, tag, IMPORT_NOTES)
    assert wait_for_import(browser, token, first, {"done", "failed"})["status"] == "done"
    assert notes_tagged(browser, token, tag) == IMPORT_NOTES

    # Negative control: no worker, no progress. Then the worker again, and the import is done.
    stack.compose("stop", "worker", timeout=120)
    waiting_tag = f"waiting-{secrets.token_hex(3)}"
    second = submit_import(browser, token, waiting_tag, 3)
    time.sleep(QUEUED_CHECK_SECONDS)
    job = browser.request("GET", second, token=token).json()
    assert (job["status"], job["imported"]) == ("queued", 0), job
    assert notes_tagged(browser, token, waiting_tag) == 0
    stack.compose("start", "worker", timeout=120)
    assert wait_for_import(browser, token, second, {"done", "failed"})["status"] == "done"
    assert notes_tagged(browser, token, waiting_tag) == 3


def submit_import(browser: Browser, token: str, tag: str, count: int) -> str:
    """POST /api/v1/imports: the Location of the import, answered 202."""
    notes = [{"title": f"{tag} {n}", "body": "imported", "tags": [tag]} for n in range(count)]
    answer = browser.request("POST", "/api/v1/imports", json_body={"notes": notes}, token=token)
    assert answer.status == 202, answer.body
    assert answer.json()["status"] == "queued"
    return answer.headers["Location"]


def wait_for_import(browser: Browser, token: str, location: str, states: set[str]) -> dict:
    deadline = time.monotonic() + IMPORT_TIMEOUT_SECONDS
    job: dict = {}
    while time.monotonic() < deadline:
        job = browser.request("GET", location, token=token).json()
        if job["status"] in states:
            return job
        time.sleep(0.25)
    raise AssertionError(f"{location} still {job} after {IMPORT_TIMEOUT_SECONDS} s")


def notes_tagged(browser: Browser, token: str, tag: str) -> int:
    answer = browser.request("GET", f"/api/v1/notes?tag={tag}&limit=100", token=token)
    assert answer.status == 200, answer.body
    return len(answer.json()["items"])


# Waits, inside the db, until the backup service's pg_receivewal has flushed all the WAL written
# so far (the note just acknowledged included): how long that took is the RPO observed.
ARCHIVED_WAIT_SQL = """
DO $$
DECLARE
  target pg_lsn := pg_current_wal_lsn();
  started timestamptz := clock_timestamp();
BEGIN
  WHILE coalesce((SELECT flush_lsn FROM pg_stat_replication
                  WHERE application_name = 'keepnotes-backup'), '0/0') < target LOOP
    IF clock_timestamp() - started > interval '10 s' THEN
      RAISE EXCEPTION 'the WAL up to % is not archived after 10 s', target;
    END IF;
    PERFORM pg_sleep(0.001);
  END LOOP;
  RAISE NOTICE 'archived_ms=%', round(extract(epoch FROM clock_timestamp() - started) * 1000, 1);
END $$;
"""


def test_the_backup_service_streams_the_wal_and_takes_base_backups(stack, container_results):
    """Protection is on by default: `manage.py protect` runs in the `backup` service under Docker,
    took a verified base backup, and streams the db's WAL into the external `backups` volume."""
    started = time.monotonic()
    stack.wait_healthy("backup", timeout=180)
    container_results["up_to_backup_healthy_seconds"] = round(time.monotonic() - started, 1)
    backup = stack.inspect("backup")
    assert backup["Config"]["Cmd"] == ["python", "manage.py", "protect"]
    assert sorted((m["Name"], m["Destination"], m["RW"]) for m in backup["Mounts"]) == [
        (stack.backups_volume, "/backups", True),
        (stack.media_volume, "/media", False),  # it reads the files, to archive and ship them
    ]
    assert stack.exec("backup", "id", "-u").strip() == "10001"
    bases = stack.exec("backup", "sh", "-c", "ls /backups/base/*.json").split()
    assert len(bases) == 1, bases

    password = secrets.token_urlsafe(24)
    stack.create_superuser(ARCHIVE_USER, password)
    token = stack.api_token(ARCHIVE_USER, password)
    browser = Browser(stack.base_url)
    lags = []
    for number in range(5):
        answer = browser.request(
            "POST", "/api/v1/notes", json_body={"title": f"archived {number}", "body": "."},
            token=token,
        )  # fmt: skip
        assert answer.status == 201, answer.body
        lags.append(wait_until_archived(stack))
    container_results["rpo_ms_observed_max"] = max(lags)
    container_results["rpo_ms_observed_all"] = lags
    slot = stack.compose(
        "exec", "-T", "db", "psql", "-U", stack.database_user, "-d", "postgres", "-At", "-c",
        "SELECT slot_name, active FROM pg_replication_slots", timeout=60,
    )  # fmt: skip
    assert slot.stdout.split() == ["keepnotes_backup|t"]
    wal = stack.exec("backup", "sh", "-c", "ls /backups/wal/*/").split()
    assert any(name.endswith(".partial") for name in wal), wal

    # `manage.py backup` on compose: a base backup now, checked, beside the first.
    made = stack.compose(
        "run", "--rm", "--no-deps", "backup", "python", "manage.py", "backup", timeout=300
    )
    assert "checked with pg_verifybackup" in made.stdout, made.stdout
    assert len(stack.exec("backup", "sh", "-c", "ls /backups/base/*.json").split()) == 2


def test_a_lost_db_volume_comes_back_with_restore(stack, container_results):
    """Notes and an attachment written, the db and media volumes destroyed (`down`, `docker
    volume rm` of pgdata and media only), `up` on an empty database: the notes are gone;
    `restore --to` a moment before the loss, from the `backups` volume, into the db and media
    volumes: they are back, the file byte for byte, and the API token with them."""
    password = secrets.token_urlsafe(24)
    stack.create_superuser(RESTORE_USER, password)
    token = stack.api_token(RESTORE_USER, password)
    titles = write_notes(stack, token, "kept by the archive", 20)
    note = make_note(stack.port, token)
    content = os.urandom(100_000)
    attached = upload_acked(stack.port, token, note, content, "kept.bin")
    wait_until_archived(stack)
    before_the_loss = datetime.now(UTC).isoformat()

    stack.down()
    pgdata = f"{stack.project}_pgdata"
    stack.engine.docker("volume", "rm", pgdata, timeout=120)
    stack.engine.docker("volume", "rm", stack.media_volume, timeout=120)  # `up` makes it anew
    assert stack.volume_exists(stack.backups_volume)
    container_results["up_to_ready_seconds_empty_db"] = round(stack.up(), 1)
    # Negative control: without the restore, the notes and the token are gone.
    assert Browser(stack.base_url).request("GET", "/api/v1/notes", token=token).status == 401
    # The backup service noticed a new database where the archive held another's, and said so.
    deadline = time.monotonic() + 60
    while "This is a new database" not in service_log(stack, "backup"):
        assert time.monotonic() < deadline, service_log(stack, "backup")
        time.sleep(1)

    # Refused while the db runs, and nothing is touched.
    refused = restore(stack, "--to", before_the_loss, "--force", check=False)
    assert refused.returncode == 1, refused.stdout
    assert "is running on /var/lib/postgresql/18/docker" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr

    stack.compose("stop", timeout=300)
    started = time.monotonic()
    restored = restore(stack, "--to", before_the_loss, "--force")
    container_results["restore_seconds"] = round(time.monotonic() - started, 1)
    assert "Restored from /backups to " in restored.stdout, restored.stdout
    assert "postgres.before-restore-" in restored.stdout, "the empty database moved aside"
    assert "Files: the restored rows name 1," in restored.stdout, restored.stdout
    container_results["up_to_ready_seconds_restored"] = round(stack.up(), 1)

    assert note_titles(stack, token) == titles | {"with files"}
    assert download(stack.port, token, note, attached["id"]) == content
    # Protected again: a new history (the restored server's timeline), a new base backup.
    stack.wait_healthy("backup", timeout=180)
    assert len(stack.exec("backup", "sh", "-c", "ls -d /backups/wal/*/").split()) >= 2


def test_restore_latest_brings_back_every_acknowledged_note_after_a_killed_db_and_lost_volume(
    stack, container_results
):
    """SIGKILL the db right after the last acknowledged write, delete its volume, `restore
    --latest` before any `up` (no --force: there is no data to replace): every note is back."""
    password = secrets.token_urlsafe(24)
    stack.create_superuser(LATEST_USER, password)
    token = stack.api_token(LATEST_USER, password)
    wait_for_a_base_backup_of_the_current_history(stack)
    titles = write_notes(stack, token, "acknowledged", 50)
    stack.compose("kill", "db", timeout=120)  # at once: no wait for the archive

    stack.down()
    stack.engine.docker("volume", "rm", f"{stack.project}_pgdata", timeout=120)
    restored = restore(stack, "--latest")
    assert "Restored from /backups to its newest point" in restored.stdout, restored.stdout
    stack.up()

    back = note_titles(stack, token)
    container_results["notes_lost_with_latest"] = f"{len(titles - back)} of {len(titles)}"
    assert back == titles


def write_notes(stack, token: str, prefix: str, count: int) -> set[str]:
    """`count` notes over the API, each acknowledged (201): their titles."""
    browser = Browser(stack.base_url)
    titles = {f"{prefix} {number} {secrets.token_hex(3)}" for number in range(count)}
    for title in titles:
        answer = browser.request(
            "POST", "/api/v1/notes", json_body={"title": title, "body": "."}, token=token
        )
        assert answer.status == 201, answer.body
    return titles


def service_log(stack, service: str) -> str:
    shown = stack.compose("logs", service, check=False, log_file=None)
    return shown.stdout + shown.stderr


def note_titles(stack, token: str) -> set[str]:
    listed = Browser(stack.base_url).request("GET", "/api/v1/notes?limit=100", token=token)
    assert listed.status == 200, listed.body
    return {note["title"] for note in listed.json()["items"]}


def wait_for_a_base_backup_of_the_current_history(stack, timeout: float = 120) -> None:
    """After a restore, the backup service starts a new history with a base backup of its own:
    until then --latest would restore the older history's newest point."""
    check = ["exec", "-T", "backup", "python", "-m", "backups.continuous.healthcheck", "/backups"]
    deadline = time.monotonic() + timeout
    while stack.compose(*check, check=False).returncode:  # the service's own health check
        assert time.monotonic() < deadline, "no base backup of the current history"
        time.sleep(1)


def restore(stack, *arguments: str, check: bool = True):
    return stack.compose(
        "run", "--rm", "restore", "python", "manage.py", "restore", *arguments,
        timeout=600, check=check,
    )  # fmt: skip


def wait_until_archived(stack) -> float:
    """Until the backup service has flushed every WAL byte written so far: milliseconds."""
    waited = stack.compose(
        "exec", "-T", "db", "psql", "-U", stack.database_user, "-d", "postgres",
        "-v", "ON_ERROR_STOP=1", "-c", ARCHIVED_WAIT_SQL, timeout=60,
    )  # fmt: skip
    return float(re.search(r"archived_ms=([\d.]+)", waited.stderr).group(1))


def test_data_survives_down_and_up_and_down_v_removes_it(stack, container_results):
    password = secrets.token_urlsafe(24)
    title = f"Written before down/up {secrets.token_hex(4)}"

    stack.create_superuser(ADMIN_USER, password)

    browser = Browser(stack.base_url)
    login = browser.admin_login(ADMIN_USER, password)
    assert (login.status, login.headers.get("Location")) == (302, "/admin/"), login.body[:500]
    assert ADMIN_USER in browser.request("GET", "/admin/").body

    token_answer = browser.request(
        "POST", "/api/v1/auth/token", json_body={"username": ADMIN_USER, "password": password}
    )
    assert token_answer.status == 201, token_answer.body
    token = token_answer.json()["token"]
    me = browser.request("GET", "/api/v1/me", token=token).json()

    # A note, created in the admin like the tutorial does.
    added = browser.admin_add_note(me["id"], title, "kept in the pgdata volume", ["e2e"])
    assert added.status == 302, form_errors(added.body)
    notes = browser.request("GET", "/api/v1/notes?tag=e2e", token=token).json()["items"]
    assert [note["title"] for note in notes] == [title]
    note_id = notes[0]["id"]

    # down keeps the volume; up again: the superuser, the note and the API token are there.
    stack.down()
    container_results["up_to_ready_seconds_existing_data"] = round(stack.up(), 1)

    browser = Browser(stack.base_url)
    login = browser.admin_login(ADMIN_USER, password)
    assert (login.status, login.headers.get("Location")) == (302, "/admin/"), (
        "the superuser is gone after down/up: the database was not kept"
    )
    assert title in browser.request("GET", "/admin/notes/note/").body
    kept = browser.request("GET", f"/api/v1/notes/{note_id}", token=token)
    assert kept.status == 200, kept.body
    assert kept.json()["title"] == title
    assert stack.volume_exists(f"{stack.project}_pgdata")

    # Negative control: down -v deletes the volume; up starts from an empty database.
    stack.down(volumes=True)
    assert not stack.volume_exists(f"{stack.project}_pgdata")
    assert stack.volume_exists(stack.backups_volume), "down -v deleted the archive"
    container_results["up_to_ready_seconds_after_down_v"] = round(stack.up(), 1)

    browser = Browser(stack.base_url)
    login = browser.admin_login(ADMIN_USER, password)
    assert login.status == 200, "the login form again, with an error: the user is gone"
    refused = browser.request(
        "POST", "/api/v1/auth/token", json_body={"username": ADMIN_USER, "password": password}
    )
    assert refused.status == 401, refused.body
    assert browser.request("GET", f"/api/v1/notes/{note_id}", token=token).status == 401
