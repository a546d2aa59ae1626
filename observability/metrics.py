"""Every metric the application processes record (docs/operating.md says what each means).

Imported only once a request or an event needs it: `serve` must first set
PROMETHEUS_MULTIPROC_DIR (server.metrics_port), which prometheus-client reads at import, so that
each worker writes its values to a file the metrics port adds up.

Labels are bounded: a route is its template (`/api/v1/notes/{note_id}`), never a raw path.
"""

from prometheus_client import Counter, Histogram

# Latency buckets around what this service answers in (milliseconds; docs/performance.md).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

REQUESTS = Counter(
    "keepnotes_http_requests",
    "HTTP requests answered, by route template, method and status code.",
    ["route", "method", "status"],
)
REQUEST_DURATION = Histogram(
    "keepnotes_http_request_duration_seconds",
    "Time from the request reaching Django to its response, by route template and method.",
    ["route", "method", "status"],
    buckets=LATENCY_BUCKETS,
)
DB_QUERIES = Counter(
    "keepnotes_db_queries",
    "Database queries run while answering requests, by route template.",
    ["route", "method"],
)
DB_QUERY_SECONDS = Counter(
    "keepnotes_db_query_seconds",
    "Time spent in database queries while answering requests, by route template.",
    ["route", "method"],
)
DB_QUERIES_PER_REQUEST = Histogram(
    "keepnotes_db_queries_per_request",
    "How many queries one request ran (an N+1 shows as a high bucket).",
    buckets=(0, 1, 2, 3, 5, 8, 13, 21, 50, 100),
)
LOGINS_FAILED = Counter("keepnotes_logins_failed", "Password logins refused: wrong credentials.")
LOGINS_THROTTLED = Counter(
    "keepnotes_logins_throttled", "Password logins refused with 429: too many failures."
)
TOKENS_ISSUED = Counter("keepnotes_tokens_issued", "API tokens created.")
TOKENS_REVOKED = Counter(
    "keepnotes_tokens_revoked", "API tokens revoked (by their owner, a password change, ...)."
)
IDEMPOTENT_REPLAYS = Counter(
    "keepnotes_idempotency_replays", "POSTs answered from a stored answer (a retried key)."
)
IDEMPOTENCY_CONFLICTS = Counter(
    "keepnotes_idempotency_conflicts", "POSTs refused with 422: a key reused with another body."
)
