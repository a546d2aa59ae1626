"""Reading the container files (compose, Dockerfile, env examples) and their linters."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

# From PostgreSQL 18 the official image keeps PGDATA in /var/lib/postgresql/18/docker and
# declares its VOLUME at /var/lib/postgresql (docker-library/postgres#1259). A named volume
# anywhere else leaves the data in an anonymous volume that is lost when the container is
# re-created.
POSTGRES_18_VOLUME_PATH = "/var/lib/postgresql"

KNOWN_DEFAULT_PASSWORDS = {"password", "postgres", "admin", "secret", "changeme", "123456"}
ENV_FILE_ASSIGNMENT = re.compile(r"^\s*#?\s*(?P<key>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$")
INTERPOLATION_DEFAULT = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-(?P<default>[^}]*)\}")
INTERPOLATED_NAME = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)")
INTERPOLATION = re.compile(
    r"(?<!\$)\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<operator>[-?])(?P<argument>[^}]*))?\}"
)


# --- helpers ------------------------------------------------------------------------------------


def tool_or_skip(name: str, path: str | None) -> str:
    """The tool's path; when missing, skip locally but fail in CI (which must install it)."""
    if path:
        return path
    message = f"{name} not found"
    if os.environ.get("CI"):
        pytest.fail(f"{message}: CI must install it")
    pytest.skip(message)


def find_hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.is_file() else shutil.which("hadolint")


def find_dclint() -> str | None:
    in_repo = REPO / "node_modules" / ".bin" / "dclint"
    return (
        os.environ.get("DCLINT")
        or shutil.which("dclint")
        or (str(in_repo) if in_repo.is_file() else None)
    )


def run_tool(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)


def load_compose(name: str) -> dict:
    return yaml.safe_load((REPO / name).read_text())


def environment_items(service: dict) -> list[tuple[str, str]]:
    """A service's environment as (key, value) pairs, from either the map or the list form."""
    environment = service.get("environment") or {}
    if isinstance(environment, dict):
        return [(key, "" if value is None else str(value)) for key, value in environment.items()]
    return [tuple(item.partition("=")[::2]) for item in environment]


def interpolate(value: str, values: dict[str, str]) -> str:
    """Compose's `${NAME}`, `${NAME:-default}` and `${NAME:?error}` with `values` as the .env."""

    def substitute(match: re.Match) -> str:
        given = values.get(match["name"], "")
        if given or not match["operator"]:
            return given
        if match["operator"] == "?":
            raise KeyError(f"{match['name']}: {match['argument']}")
        return match["argument"]

    return INTERPOLATION.sub(substitute, value).replace("$$", "$")


def values_and_interpolation_defaults(value: str) -> list[str]:
    """`${X:-postgres}` hides a default value: check it too."""
    return [value, *(m["default"] for m in INTERPOLATION_DEFAULT.finditer(value))]


def is_known_default_password(value: str) -> bool:
    return value.strip().strip("'\"").lower() in KNOWN_DEFAULT_PASSWORDS


def default_passwords_in_env_file(path: Path) -> list[str]:
    """Lines of a .env-style file (commented examples included) that hold a default password."""
    found = []
    for line in path.read_text().splitlines():
        match = ENV_FILE_ASSIGNMENT.match(line)
        if match and any(
            is_known_default_password(value)
            for value in values_and_interpolation_defaults(match["value"])
        ):
            found.append(line.strip())
    return found


def default_passwords_in_compose(compose: dict) -> list[str]:
    found = []
    for service_name, service in compose.get("services", {}).items():
        for key, value in environment_items(service):
            if any(map(is_known_default_password, values_and_interpolation_defaults(value))):
                found.append(f"{service_name}: {key}={value}")
    return found


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    instructions, pending = [], ""
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]
