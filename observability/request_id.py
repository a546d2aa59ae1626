"""One id per request, on its response and on every log line written while it is answered.

A proxy in front (Caddy, an ingress) may already have given the request an id: `X-Request-ID` is
taken from it only when the TCP peer is a trusted proxy (settings.TRUSTED_PROXIES, as for the
client's address), since anyone else could send an id that points at someone else's lines.
"""

import contextvars
import logging
import re
import uuid

from django.http import HttpRequest

from core.client_address import peer_is_trusted_proxy

HEADER = "X-Request-ID"
NONE = "-"  # outside any request: start-up, the metrics port, background threads

current = contextvars.ContextVar("request_id", default=NONE)

# Short and plain: an id goes into log lines and a response header unquoted.
_ACCEPTED = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


def request_id_for(request: HttpRequest) -> str:
    """The trusted proxy's `X-Request-ID` when it is a plain token, else a new random one."""
    given = request.META.get("HTTP_X_REQUEST_ID", "")
    if given and _ACCEPTED.fullmatch(given) and peer_is_trusted_proxy(request):
        return given
    return uuid.uuid4().hex


def forget(**kwargs) -> None:
    """request_finished: what this thread logs next belongs to no request until the next one."""
    current.set(NONE)


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on every record (a logging handler filter)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current.get()
        return True
