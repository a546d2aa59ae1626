"""The example app can be removed: a copy of the project without `notes` starts and passes checks.

The copy is made exactly as docs/replace-the-example.md says: `notes` leaves INSTALLED_APPS,
its router leaves the API, and its folder is deleted. Nothing else may need to change.
"""

import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.support.keys import GOOD_KEY
from tests.support.processes import REPO, Server, manage


def project_files() -> list[str]:
    """The checkout's files as a clone would have them (tracked, or new and not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    )
    return [name for name in listed.stdout.decode().split("\0") if name]


def remove_the_example(copy: Path) -> None:
    """docs/replace-the-example.md, steps 1 to 3."""
    settings = copy / "config" / "settings.py"
    text = settings.read_text()
    assert '    "notes",\n' in text
    settings.write_text(text.replace('    "notes",\n', ""))

    api = copy / "config" / "api.py"
    text = api.read_text()
    lines = [line for line in text.splitlines(keepends=True) if "notes_router" not in line]
    assert len(lines) == len(text.splitlines()) - 2, "one import and one add_router line"
    api.write_text("".join(lines))

    shutil.rmtree(copy / "notes")


@pytest.fixture(scope="module")
def copy_without_notes(tmp_path_factory) -> Path:
    copy = tmp_path_factory.mktemp("without-notes") / "project"
    for name in project_files():
        source = REPO / name
        if name.startswith(("tests/", "bench/")) or not source.is_file():
            continue  # neither is part of the app; both use the example on purpose
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    remove_the_example(copy)
    return copy


def test_nothing_outside_the_example_names_it(copy_without_notes):
    # Templates may say "notes" in prose; code must not import it.
    imports = re.compile(r"^\s*(from|import)\s+notes\b", re.MULTILINE)
    offenders = [
        str(path.relative_to(copy_without_notes))
        for path in copy_without_notes.rglob("*.py")
        if imports.search(path.read_text())
    ]
    assert offenders == []


def test_the_configuration_keeps_nothing_of_the_example(copy_without_notes):
    """Its package, its endpoints and its settings live in notes/, none of them in config/."""
    names = re.compile(r"\b(?i:notes|imports)\b|\bIMPORTS?_[A-Z_]+")
    found = [
        f"{path.relative_to(copy_without_notes)}:{number}: {line.strip()}"
        for path in sorted((copy_without_notes / "config").rglob("*"))
        if path.is_file()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if names.search(line)
    ]
    assert found == []


def test_the_copy_passes_check_deploy(copy_without_notes, tmp_path):
    checked = manage(
        tmp_path / "data",
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        repo=copy_without_notes,
        DJANGO_SECRET_KEY=GOOD_KEY,
        DJANGO_HTTPS="true",
        DJANGO_ALLOWED_HOSTS="example.org",
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "no issues" in checked.stdout


def test_the_copy_starts_migrates_and_serves_health_and_admin(copy_without_notes, tmp_path):
    server = Server(tmp_path / "data", repo=copy_without_notes, shipped=True)
    try:
        assert server.request("GET", "/healthz") == (200, {"status": "ok"})
        assert server.request("GET", "/readyz")[0] == 200, "migrated"
        with urllib.request.urlopen(
            f"http://127.0.0.1:{server.port}/admin/login/", timeout=10
        ) as response:
            assert response.status == 200
            assert b'name="username"' in response.read()
        assert server.request("GET", "/api/v1/notes")[0] == 404, "the example is really gone"
        assert server.token(), "accounts still issue tokens"
    finally:
        assert server.stop() == 0


def test_a_copy_that_still_installs_a_deleted_app_fails_to_start(copy_without_notes, tmp_path):
    """Negative control: the checks above can fail (a half-removed app is caught)."""
    broken = tmp_path / "broken"
    shutil.copytree(copy_without_notes, broken)
    settings = broken / "config" / "settings.py"
    text = settings.read_text()
    settings.write_text(text.replace('    "idempotency",\n', '    "idempotency",\n    "notes",\n'))
    checked = manage(tmp_path / "data", "check", repo=broken, DJANGO_SECRET_KEY=GOOD_KEY)
    assert checked.returncode != 0
    assert "No module named 'notes'" in checked.stderr
