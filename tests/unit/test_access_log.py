"""gunicorn's access line, through observability.access_log: the request id, JSON or text."""

import datetime
import json
import logging
from types import SimpleNamespace

import pytest
from gunicorn.config import Config

from observability.access_log import GunicornLogger


class Response:
    status = "404 Not Found"
    status_code = 404
    sent = 23
    headers = [("Content-Type", "application/json"), ("X-Request-ID", "edge-1")]


def access_line(settings, log_format: str, capsys) -> str:
    settings.LOG_FORMAT = log_format
    config = Config()
    config.set("accesslog", "-")
    logger = GunicornLogger(config)
    environ = {
        "REMOTE_ADDR": "10.0.0.7",
        "HTTP_USER_AGENT": "curl/8",
        "QUERY_STRING": "q=secret",
        "REQUEST_METHOD": "GET",
        "RAW_URI": "/api/v1/notes/9?q=secret",
        "PATH_INFO": "/api/v1/notes/9",
        "SERVER_PROTOCOL": "HTTP/1.1",
    }
    request = SimpleNamespace(
        method="GET",
        path="/api/v1/notes/9",
        query="q=secret",
        uri="/api/v1/notes/9?q=secret",
        version=(1, 1),
        headers=[("USER-AGENT", "curl/8")],
    )
    logger.access(Response(), request, environ, datetime.timedelta(milliseconds=12))
    for handler in logging.getLogger("gunicorn.access").handlers:
        handler.flush()
    return capsys.readouterr().out.strip().splitlines()[-1]


def test_json_access_line_has_the_request_id_and_no_query_string(settings, capsys):
    line = json.loads(access_line(settings, "json", capsys))
    assert (line["request_id"], line["status"], line["path"]) == ("edge-1", 404, "/api/v1/notes/9")
    assert "secret" not in json.dumps(line)


def test_text_access_line_has_the_request_id(settings, capsys):
    line = access_line(settings, "text", capsys)
    assert '"GET /api/v1/notes/9" 404' in line and "[edge-1]" in line
    assert "secret" not in line


@pytest.fixture(autouse=True)
def _leave_gunicorns_loggers_as_found():
    loggers = [logging.getLogger(name) for name in ("gunicorn.access", "gunicorn.error")]
    before = [list(logger.handlers) for logger in loggers]
    yield
    for logger, handlers in zip(loggers, before, strict=True):
        logger.handlers = handlers
