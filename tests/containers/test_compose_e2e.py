"""The tutorial, for real: build the image, `docker compose up`, log in, write a note, `down`,
`up`, read it back; `down -v` and it is gone. Plus what the image and the stack must not do.

Opt-in and slow (minutes): CONTAINER_TESTS=1 uv run pytest tests/containers -v
The stack fixture (conftest.py) builds and starts it; the data test runs last.
"""

from __future__ import annotations

import re
import secrets
import time

import pytest

from tests.support.container_http import Browser, form_errors

pytestmark = pytest.mark.containers

ADMIN_USER = "e2e-admin"
IMPORT_USER = "e2e-importer"
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
    container_results["up_to_ready_seconds_after_down_v"] = round(stack.up(), 1)

    browser = Browser(stack.base_url)
    login = browser.admin_login(ADMIN_USER, password)
    assert login.status == 200, "the login form again, with an error: the user is gone"
    refused = browser.request(
        "POST", "/api/v1/auth/token", json_body={"username": ADMIN_USER, "password": password}
    )
    assert refused.status == 401, refused.body
    assert browser.request("GET", f"/api/v1/notes/{note_id}", token=token).status == 401
