"""The CPU the observability middleware adds to one request, without the noise of a load run.

    uv run python -m bench.metrics_overhead

Calls each middleware around a handler that does nothing, in prometheus-client's multiprocess
mode (as `serve` runs it, writing to files), and prints microseconds per request. The load
benchmark's end-to-end comparison is `python -m bench --variant metrics-off:METRICS_PORT=0`.
"""

import os
import shutil
import tempfile
import time


def per_call(function, request, calls: int = 20_000, runs: int = 5) -> float:
    """Best of `runs`, in seconds of CPU per call."""
    best = float("inf")
    for _ in range(runs):
        started = time.process_time()
        for _ in range(calls):
            function(request)
        best = min(best, (time.process_time() - started) / calls)
    return best


def main() -> None:
    folder = tempfile.mkdtemp(prefix="keepnotes-bench-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder  # before prometheus_client is imported
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["DATA_DIR"] = folder  # no database is used: only a throwaway secret key
    try:
        import django

        django.setup()
        from django.http import HttpResponse
        from django.test import RequestFactory
        from django.urls import resolve

        from observability.middleware import MetricsMiddleware, RequestIdMiddleware

        response = HttpResponse()

        def handler(request):
            return response

        request = RequestFactory().get("/api/v1/notes/17", REMOTE_ADDR="127.0.0.1")
        request.resolver_match = resolve("/api/v1/notes/17")
        bare = per_call(handler, request)
        for name, middleware in (
            ("metrics", MetricsMiddleware(handler)),
            ("request id", RequestIdMiddleware(handler)),
        ):
            print(f"{name}: {(per_call(middleware, request) - bare) * 1e6:.1f} µs per request")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
