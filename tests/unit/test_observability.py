"""The pure parts of observability/: request ids, route templates, the log format."""

import contextlib
import io
import ipaddress
import json
import logging
import logging.config

import pytest
from django.contrib.admin.exceptions import DisallowedModelAdminLookup
from django.core.handlers.exception import response_for_exception
from django.http import HttpResponseNotFound
from django.test import RequestFactory
from django.urls import resolve
from django.utils.log import log_response

from observability import log_format
from observability.middleware import UNMATCHED, route_template
from observability.request_id import RequestIdFilter, request_id_for


@pytest.fixture
def proxy_at_loopback(settings):
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("127.0.0.1/32")]


def request(path="/", remote="127.0.0.1", **headers):
    made = RequestFactory().get(path, REMOTE_ADDR=remote, **headers)
    return made


def test_a_trusted_proxys_request_id_is_kept(proxy_at_loopback):
    assert request_id_for(request(HTTP_X_REQUEST_ID="abc-123")) == "abc-123"


@pytest.mark.parametrize(
    ("remote", "given"),
    [
        ("10.1.2.3", "abc-123"),  # not a trusted proxy
        ("127.0.0.1", "two words"),  # a space would split a log line
        ("127.0.0.1", "x" * 129),  # too long
        ("127.0.0.1", 'inject"quote'),
    ],
)
def test_any_other_request_id_is_replaced(proxy_at_loopback, remote, given):
    made = request_id_for(request(remote=remote, HTTP_X_REQUEST_ID=given))
    assert made != given and len(made) == 32


def test_without_trusted_proxies_no_id_is_believed(settings):
    settings.TRUSTED_PROXIES = []
    assert request_id_for(request(HTTP_X_REQUEST_ID="abc-123")) != "abc-123"


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/api/v1/notes/17", "/api/v1/notes/{note_id}"),
        ("/api/v1/notes", "/api/v1/notes"),
        ("/admin/auth/user/5/change/", "/admin/auth/user/{object_id}/change/"),
    ],
)
def test_a_route_is_its_template(path, template):
    made = request(path)
    made.resolver_match = resolve(path)
    assert route_template(made) == template


def test_paths_no_pattern_knows_share_one_label():
    assert route_template(request("/no/such/42")) == UNMATCHED
    assert route_template(request("/readyz")) == "/readyz"  # answered before URL resolution


def test_logs_are_json_unless_a_terminal_or_told(monkeypatch):
    monkeypatch.setattr("sys.stderr.isatty", lambda: False)
    assert log_format.chosen_format("") == "json"
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    assert log_format.chosen_format("") == "text"
    assert log_format.chosen_format("JSON") == "json"
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        log_format.chosen_format("xml")


def test_a_busy_metrics_port_is_logged_and_the_app_serves_on(tmp_path, monkeypatch, caplog):
    import socket

    from server import metrics_port

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert metrics_port.start("127.0.0.1", taken.getsockname()[1]) is None
    assert "not served" in caplog.text
    # Negative control: a free port is served.
    server = metrics_port.start("127.0.0.1", 0)
    assert server is not None
    server.shutdown()


# -- what clients send, in the logs --------------------------------------------------------------

FORGED = "2026-01-01 00:00:00,000 ERROR django.security [-] forged"


@contextlib.contextmanager
def logged(log_format_name: str, logger_name: str):
    """What `logger_name` writes, formatted as LOGGING does for LOG_FORMAT=`log_format_name`."""
    config = log_format.logging_config(log_format=log_format_name, level="INFO")
    formatter = logging.config.DictConfigurator(config).configure_formatter(
        config["formatters"]["chosen"]
    )
    written = io.StringIO()
    handler = logging.StreamHandler(written)
    handler.setFormatter(formatter)
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    try:
        yield written
    finally:
        logger.removeHandler(handler)


def test_client_text_in_a_message_writes_one_text_line_not_a_forged_one():
    # Django escapes the arguments of what it logs, not the message: a SuspiciousOperation's own
    # text is the message, and some hold what the client sent (here a filter in the admin's
    # query string), newlines included.
    refused = DisallowedModelAdminLookup(f"Filtering by x\n{FORGED} not allowed")
    with logged("text", "django.security.DisallowedModelAdminLookup") as written:
        response_for_exception(request("/admin/auth/user/"), refused)
    first, *exception = written.getvalue().splitlines()
    assert first.endswith(f"[-] Filtering by x\\n{FORGED} not allowed")
    assert exception, "Django adds the exception"
    assert all(line.startswith("    ") for line in exception), "no line at the margin but records"


def test_a_path_django_escaped_already_is_written_as_django_escaped_it():
    made = request(f"/no/such%0A{FORGED.replace(' ', '%20')}")
    assert "\n" in made.path, "decoded"
    with logged("text", "django.request") as written:
        log_response("Not Found: %s", made.path, response=HttpResponseNotFound(), request=made)
    (line,) = written.getvalue().splitlines()
    assert line.endswith(f"[-] Not Found: /no/such\\n{FORGED}"), "not doubled"


@pytest.mark.parametrize(
    ("sent", "written"),
    [
        ("\r", "\\r"),
        ("\x1b[2J", "\\x1b[2J"),  # a terminal escape: clear the screen
        ("\x85", "\\x85"),
        ("\u2028", "\\u2028"),
        ("\t", "\\t"),
    ],
)
def test_every_text_field_is_escaped(sent, written):
    with logged("text", f"keepnotes.{sent}") as output:
        logging.getLogger(f"keepnotes.{sent}").warning("at %s", sent, extra={"request_id": sent})
    assert output.getvalue() == (
        output.getvalue().split(" WARNING ")[0]
        + f" WARNING keepnotes.{written} [{written}] at {written}\n"
    )


def test_a_traceback_keeps_its_lines_each_indented_under_its_record():
    with logged("text", "django.request") as written:
        try:
            raise ValueError(f"bad title\n{FORGED}")
        except ValueError:
            logging.getLogger("django.request").exception("Internal Server Error: /x")
    first, *rest = written.getvalue().splitlines()
    assert first.endswith("Internal Server Error: /x")
    assert rest[0] == "    Traceback (most recent call last):"
    assert all(line.startswith("    ") for line in rest), "only records start at the margin"
    assert rest[-2:] == ["    ValueError: bad title", f"    {FORGED}"]


def test_json_lines_hold_client_text_exactly_on_one_line():
    with logged("json", "keepnotes.json") as written:
        logging.getLogger("keepnotes.json").warning("Filtering by x\n%s\x1b[2J", FORGED)
    (line,) = written.getvalue().splitlines()
    assert json.loads(line)["message"] == f"Filtering by x\n{FORGED}\x1b[2J"
