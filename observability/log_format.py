"""The logging configuration: JSON lines for machines, plain lines for a person at a terminal.

LOG_FORMAT=json or text; unset, JSON unless standard error is a terminal: a container, a
systemd unit or a log file gets one JSON object per line (python-json-logger), a developer
running `manage.py serve` in a terminal reads plain text. Both carry the request id.
"""

import logging
import sys

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

FORMATS = ("json", "text")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s"


def chosen_format(configured: str) -> str:
    """`configured` (LOG_FORMAT) when given, else json unless stderr is a terminal."""
    configured = configured.strip().lower()
    if configured:
        if configured not in FORMATS:
            raise ValueError(f"LOG_FORMAT={configured!r}: use json or text (or leave it unset).")
        return configured
    return "text" if sys.stderr.isatty() else "json"


def json_formatter() -> logging.Formatter:
    return JsonFormatter(
        JSON_FIELDS,
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        # Django's request logger passes the request, whose text has the query string, which
        # can carry secrets; the message already names the path.
        reserved_attrs=[*RESERVED_ATTRS, "request"],
    )


def logging_config(*, log_format: str, level: str) -> dict:
    """Django's LOGGING: one console handler, the request id on every record."""
    formatter = {"()": json_formatter} if log_format == "json" else {"format": TEXT_FORMAT}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "observability.request_id.RequestIdFilter"}},
        "formatters": {"chosen": formatter},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "chosen",
                "filters": ["request_id"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
    }
