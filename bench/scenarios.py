"""What the benchmark measures: scenarios, configurations, the targets, and a run's plan."""

from dataclasses import dataclass

# Each scenario is a wrk script in bench/wrk/.
SCENARIOS = {
    "read-one": "read_one.lua",
    "list-page": "list_page.lua",
    "search": "search.lua",
    "write": "write.lua",
}
CONFIGS = {
    "production": "production: manage.py serve",
    "runserver": "tutorial: runserver, CONN_MAX_AGE=0",
    "raw": "limit: raw WSGI + psycopg, same server",
}
# What the issue asks of production, as (scenario, reference, least ratio).
RATIO_TARGETS = [
    ("read-one", "runserver", 12.0),
    ("read-one", "raw", 0.5),
    ("list-page", "runserver", 6.0),
    ("write", "runserver", 6.0),
]
P99_TARGET_MS = 50.0
P99_TARGET_SCENARIOS = ("read-one", "write")
P99_TARGET_CONNECTIONS = 32
WARM_RESTART_TARGET_S = 2.0


@dataclass
class Plan:
    """How big and how long one run is (`python -m bench` and `--quick` choose it)."""

    users: int
    notes: int
    seconds: int
    warmup_seconds: int
    connections: list[int]
    repetitions: int
    pgbench_seconds: int
    pgbench_scale: int
    wrk_threads: int
    production_env: dict[str, str]
    variants: dict[str, dict[str, str]]
    quick: bool
