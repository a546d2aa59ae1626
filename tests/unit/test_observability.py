"""The pure parts of observability/: request ids, route templates, the log format."""

import ipaddress

import pytest
from django.test import RequestFactory
from django.urls import resolve

from observability import log_format
from observability.middleware import UNMATCHED, route_template
from observability.request_id import request_id_for


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
