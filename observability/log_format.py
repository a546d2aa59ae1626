"""The logging configuration: JSON lines for machines, plain lines for a person at a terminal.

LOG_FORMAT=json or text; unset, JSON unless standard error is a terminal: a container, a
systemd unit or a log file gets one JSON object per line (python-json-logger), a developer
running `manage.py serve` in a terminal reads plain text. Both carry the request id.

What clients send reaches the logs (Django's request logger writes the requested path, decoded),
so no field of a text line may start a line of its own or drive the terminal: control characters
are written escaped, as nginx escapes its access log. JSON escapes them by itself.
"""

import logging
import re
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


# C0 and C1 controls, DEL, and the Unicode line and paragraph separators, which some terminals and
# log viewers also break lines at. Not the backslash: Django's request logger escapes its
# arguments already (backslashes too), and doubling them would garble every such line.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Each line of a traceback is indented under its record: a line at the margin is always a record.
_CONTINUATION = "\n    "


def escaped(text: str) -> str:
    """`text` on one line with nothing a terminal acts on: `\\n`, `\\x1b`, `\\u2028`."""
    return _UNSAFE.sub(lambda found: _escape(found.group()), text)


def _escape(character: str) -> str:
    if character in _NAMED:
        return _NAMED[character]
    code = ord(character)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


class TextFormatter(logging.Formatter):
    """TEXT_FORMAT with every text field escaped, and tracebacks indented line by line."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        fields = {
            name: escaped(value) if isinstance(value, str) else value
            for name, value in record.__dict__.items()
        }
        return super().formatMessage(logging.makeLogRecord(fields))

    def format(self, record: logging.LogRecord) -> str:
        # As logging.Formatter.format, without its cache of the traceback's text on the record,
        # which another handler's formatter would then print as this one wrote it.
        record.message = record.getMessage()
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        details = []
        if record.exc_info:
            details.append(self.formatException(record.exc_info))
        elif record.exc_text:
            details.append(record.exc_text)
        if record.stack_info:
            details.append(self.formatStack(record.stack_info))
        for detail in details:
            line += "".join(_CONTINUATION + escaped(part) for part in detail.split("\n"))
        return line


def text_formatter() -> logging.Formatter:
    return TextFormatter(TEXT_FORMAT)


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
    formatter = {"()": json_formatter if log_format == "json" else text_formatter}
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
