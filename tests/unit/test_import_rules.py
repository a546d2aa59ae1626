"""The import contracts in pyproject.toml hold, and a forbidden import does break them."""

import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.processes import REPO


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_project_keeps_every_import_contract():
    checked = lint_imports(REPO)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "BROKEN" not in checked.stdout and " 0 broken" in checked.stdout


def test_a_forbidden_import_breaks_a_contract(tmp_path):
    """Negative control: core importing the example app is caught, naming the import."""
    copy = tmp_path / "project"
    copy.mkdir()
    shutil.copy(REPO / "pyproject.toml", copy)
    for package in {line.split(".")[0] for line in _root_packages()}:
        shutil.copytree(REPO / package, copy / package, ignore=shutil.ignore_patterns("results"))
    errors = copy / "core" / "errors.py"
    errors.write_text(errors.read_text() + "\nfrom notes import models  # noqa\n")
    checked = lint_imports(copy)
    assert checked.returncode != 0
    assert "BROKEN" in checked.stdout
    assert "core.errors -> notes.models" in checked.stdout


def _root_packages() -> list[str]:
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    return config["tool"]["importlinter"]["root_packages"]
