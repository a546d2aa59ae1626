"""What the benchmark measures: scenarios, configurations, the targets, and a run's plan."""

from dataclasses import dataclass

# Each scenario is a wrk script in bench/wrk/.
SCENARIOS = {
    "read-one": "read_one.lua",
    "list-page": "list_page.lua",
    "search": "search.lua",
    "write": "write.lua",
    # A phase of its own (bench/downloads.py): production's downloads against nginx's static file.
    "download": "download.lua",
}
# Measured in a phase of their own, on production only, not in the matrix of configurations.
PHASE_SCENARIOS = ("download",)
# Production, then the references it is measured against, in the order the report shows them.
CONFIGS = {
    "production": "production: manage.py serve",
    "runserver": "tutorial: runserver, CONN_MAX_AGE=0",
    "drf": "peer: DRF ModelViewSet, cookiecutter-django's gunicorn (bench/drf_peer)",
    "bolt": "peer: django-bolt, async ORM, runbolt with a process per core (bench/bolt_peer)",
    "raw": "limit: raw WSGI + psycopg, same server",
}
REFERENCES = [name for name in CONFIGS if name != "production"]
# What the issue asks of production, as (scenario, reference, least ratio), at every level.
RATIO_TARGETS = [
    ("read-one", "runserver", 12.0),
    ("read-one", "raw", 0.8),
    ("read-one", "drf", 3.0),
    ("read-one", "bolt", 1.5),
    ("list-page", "runserver", 6.0),
    ("list-page", "raw", 0.7),
    ("list-page", "drf", 2.0),
    ("write", "runserver", 6.0),
]
P99_TARGET_MS = 50.0
P99_TARGET_SCENARIOS = ("read-one", "list-page", "write")
P99_TARGET_CONNECTIONS = 32
WARM_RESTART_TARGET_S = 2.0
# Right after a restart, every window of the first seconds within this share of steady state.
WARMUP_TARGET_SHARE = 0.9
WARMUP_SCENARIO = "read-one"


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
    scenarios: list[str]
    configurations: list[str]  # production and the references measured, in CONFIGS' order
    after_restart_seconds: int  # load right after a fresh restart, in windows:
    after_restart_window_seconds: int
