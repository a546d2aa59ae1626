"""docs/configuration.md lists every environment variable the project reads, and only those.

"Reads" means: the app's Python code (`env.get_str("X")` and the other `core/env.py` readers,
`os.environ.get("X")`, `os.environ["X"]`, `os.getenv("X")`, `"X" in os.environ`), the variables
the compose files interpolate (`${X:-default}`), and the Dockerfile's build arguments. Every
`get_str` name also has its `X_FILE` form (core/env.py): documenting that form is allowed,
never required. The benchmark and the tests are not the app and are not scanned.
"""

import ast
import re
from collections.abc import Iterable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "configuration.md"
APP_PACKAGES = (
    "config", "core", "server", "backups", "pgembedded", "accounts", "notes", "idempotency",
    "tasks",
)  # fmt: skip
APP_MODULES = ("manage.py",)
COMPOSE_FILES = (
    "compose.yaml", "compose.dev.yaml", "compose.production.yaml", "deploy/compose.pgbouncer.yaml",
)  # fmt: skip
# The services that run the app's image (compose.production.yaml's `migrate` runs `prepare`).
APP_SERVICES = {"app", "migrate"}

# Functions whose first argument is the name of the variable they read.
READERS = {"get_str", "get_int", "get_bool", "get_list", "get_secret", "getenv"}
# Of those, the ones that also read NAME_FILE (a Docker or Kubernetes secret).
FILE_READERS = {"get_str", "get_secret"}
NAME = re.compile(r"[A-Z][A-Z0-9_]*")


class Reads:
    """The variables some source reads, and the `_FILE` forms it also accepts."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.file_forms: set[str] = set()

    def add(self, other: "Reads") -> "Reads":
        self.names |= other.names
        self.file_forms |= other.file_forms
        return self


def _is_environ(node: ast.expr) -> bool:
    """`os.environ`, or a parameter called `environ` (core/env.py's readers take one)."""
    return (isinstance(node, ast.Name) and node.id == "environ") or (
        isinstance(node, ast.Attribute) and node.attr == "environ"
    )


def _literal(node: ast.expr | None) -> str | None:
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and NAME.fullmatch(node.value)
    ):
        return node.value
    return None


def python_reads(source: str) -> Reads:
    """The environment variables a Python module reads by a literal name."""
    reads = Reads()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and node.args:
            function = node.func
            called = function.attr if isinstance(function, ast.Attribute) else None
            if isinstance(function, ast.Name):
                called = function.id
            name = _literal(node.args[0])
            if name is None:
                continue
            if called in READERS:
                reads.names.add(name)
                if called in FILE_READERS:
                    reads.file_forms.add(f"{name}_FILE")
            elif (
                called == "get"
                and isinstance(function, ast.Attribute)
                and _is_environ(function.value)
            ):
                reads.names.add(name)
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            name = _literal(node.slice)
            if name and _is_environ(node.value):
                reads.names.add(name)
        elif isinstance(node, ast.Compare) and len(node.ops) == 1:
            name = _literal(node.left)
            membership = isinstance(node.ops[0], ast.In | ast.NotIn)
            if name and membership and _is_environ(node.comparators[0]):
                reads.names.add(name)
    return reads


def compose_reads(text: str) -> Reads:
    """The variables a compose file interpolates: `${X}`, `${X:-d}`, `$X`; `$$` is a literal $."""
    reads = Reads()
    for match in re.finditer(r"\$\$|\$\{?([A-Za-z_][A-Za-z0-9_]*)", text):
        if match[1]:
            reads.names.add(match[1])
    return reads


def dockerfile_reads(text: str) -> Reads:
    """A Dockerfile's build arguments (`docker build --build-arg X=...`)."""
    reads = Reads()
    reads.names |= set(re.findall(r"^\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)", text, re.MULTILINE | re.I))
    return reads


def documented_names(markdown: str) -> set[str]:
    """The names in the first column of every table in the page (each in backticks)."""
    names = set()
    for line in markdown.splitlines():
        if not line.startswith("|"):
            continue
        first_cell = line.strip().strip("|").split("|")[0]
        names |= {name for name in re.findall(r"`([^`]+)`", first_cell) if NAME.fullmatch(name)}
    return names


def compare(reads: Reads, documented: set[str]) -> tuple[set[str], set[str]]:
    """(read but undocumented, documented but read nowhere)."""
    return reads.names - documented, documented - reads.names - reads.file_forms


def app_python_files() -> Iterable[Path]:
    for package in APP_PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))
    for module in APP_MODULES:
        yield ROOT / module


def project_reads() -> Reads:
    reads = app_reads()
    for name in COMPOSE_FILES:
        reads.add(compose_reads((ROOT / name).read_text()))
    return reads.add(dockerfile_reads((ROOT / "Dockerfile").read_text()))


def app_reads() -> Reads:
    reads = Reads()
    for path in app_python_files():
        reads.add(python_reads(path.read_text()))
    return reads


# -- The project --------------------------------------------------------------------------------


def test_every_variable_read_is_documented():
    undocumented, _ = compare(project_reads(), documented_names(DOCS.read_text()))
    assert not undocumented, f"read but missing from docs/configuration.md: {sorted(undocumented)}"


def test_every_documented_variable_is_read():
    _, unread = compare(project_reads(), documented_names(DOCS.read_text()))
    assert not unread, f"in docs/configuration.md but read nowhere: {sorted(unread)}"


def test_the_scan_finds_the_known_readers():
    """Guards the scanner itself: one variable of each way of reading, all found."""
    reads = project_reads()
    expected = {
        "DJANGO_SECRET_KEY",  # env.get_str in config/settings.py
        "DB_HOST",  # environ.get in core/env.py
        "DB_PORT",  # get_int(..., environ) in core/env.py
        "WEB_THREADS",  # env.get_int in server/wsgi_servers.py
        "BACKUP_DIR",  # backups/
        "POSTGRES_PASSWORD",  # compose interpolation
        "UV_VERSION",  # a Dockerfile ARG
    }
    assert expected <= reads.names
    assert "DATABASE_URL_FILE" in reads.file_forms


def test_compose_gives_the_app_only_variables_it_reads():
    """A variable compose sets for the app's container that the app ignores is a stale line."""
    reads = app_reads()
    stale = set()
    for name in COMPOSE_FILES:
        services = yaml.safe_load((ROOT / name).read_text()).get("services", {})
        for service_name, service in services.items():
            if service_name in APP_SERVICES:
                stale |= set(service.get("environment") or {}) - reads.names - reads.file_forms
    assert not stale, f"set for the app in compose but never read: {sorted(stale)}"


# -- The checker, on inputs made up here (negative controls) -------------------------------------

SYNTHETIC_CODE = """
import os
from core import env
A = env.get_str("SECRET_THING")
B = env.get_int("ONLY_IN_CODE", 3)
C = os.environ.get("BY_ENVIRON_GET")
D = os.environ["BY_SUBSCRIPT"]
E = os.getenv("BY_GETENV", "x")
F = "BY_MEMBERSHIP" in os.environ
os.environ["WRITTEN_NOT_READ"] = "1"
os.environ.setdefault("SET_BY_DEFAULT", "1")
G = env.get_str(f"{A}_FILE")
"""

SYNTHETIC_DOCS = """
| variable | default | meaning |
| --- | --- | --- |
| `SECRET_THING`, `SECRET_THING_FILE` | unset | a secret |
| `BY_ENVIRON_GET`, `BY_SUBSCRIPT` | unset | two |
| `BY_GETENV` | x | one |
| `BY_MEMBERSHIP` | unset | one, `NOT_A_NAME_IN_COLUMN_TWO` |
| `GHOST` | 1 | read nowhere |
| `ONLY_IN_CODE_FILE` | unset | get_int has no _FILE form |
"""


def test_python_reads_finds_each_way_of_reading_and_nothing_else():
    reads = python_reads(SYNTHETIC_CODE)
    assert reads.names == {
        "SECRET_THING", "ONLY_IN_CODE", "BY_ENVIRON_GET", "BY_SUBSCRIPT", "BY_GETENV",
        "BY_MEMBERSHIP",
    }  # fmt: skip
    assert reads.file_forms == {"SECRET_THING_FILE"}


def test_compare_reports_a_missing_name_and_a_ghost():
    undocumented, unread = compare(python_reads(SYNTHETIC_CODE), documented_names(SYNTHETIC_DOCS))
    assert undocumented == {"ONLY_IN_CODE"}
    assert unread == {"GHOST", "ONLY_IN_CODE_FILE"}


def test_documented_names_reads_only_the_first_column():
    names = documented_names(SYNTHETIC_DOCS)
    assert "NOT_A_NAME_IN_COLUMN_TWO" not in names
    assert {"SECRET_THING", "SECRET_THING_FILE", "GHOST"} <= names


def test_compose_reads_skips_escaped_dollars():
    text = 'a: ${IMAGE:-postgres:18}\nb: "$${SHELL_ONLY}"\nc: $PLAIN\nd: "$$(date)"\n'
    assert compose_reads(text).names == {"IMAGE", "PLAIN"}


def test_dockerfile_reads_build_arguments():
    text = "ARG BASE=python:3.13-slim\nFROM ${BASE}\nENV NOT_AN_ARG=1\n  ARG INDENTED\n"
    assert dockerfile_reads(text).names == {"BASE", "INDENTED"}
