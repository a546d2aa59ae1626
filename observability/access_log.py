"""gunicorn's access and error log in the same format as the application's, with the request id.

The access line is written by gunicorn after the response has left Django, so the id is read
from the response's `X-Request-ID` header (set by observability.middleware.RequestIdMiddleware).
"""

from django.conf import settings
from gunicorn import glogging

from . import log_format, request_id


class GunicornLogger(glogging.Logger):
    def setup(self, cfg):
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.addFilter(request_id.RequestIdFilter())
                if settings.LOG_FORMAT == "json":
                    handler.setFormatter(log_format.json_formatter())

    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        atoms = self.atoms(resp, req, environ, request_time)
        headers = dict((name.lower(), value) for name, value in resp.headers)
        fields = {
            "request_id": headers.get(request_id.HEADER.lower(), request_id.NONE),
            "remote": atoms["h"],
            "method": atoms["m"],
            "path": atoms["U"],  # without the query string, which may carry secrets
            "status": resp.status_code,
            "bytes": atoms["B"],
            "duration_ms": round(request_time.total_seconds() * 1000, 3),
            "user_agent": atoms["a"],
        }
        try:
            if settings.LOG_FORMAT == "json":
                self.access_log.info("access", extra=fields)
            else:
                self.access_log.info(
                    '%(remote)s "%(method)s %(path)s" %(status)s %(bytes)s %(duration_ms)sms '
                    "[%(request_id)s]",
                    fields,
                )
        except Exception:
            self.exception("could not write the access line")
