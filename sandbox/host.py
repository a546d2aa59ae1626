"""What the sandbox leaves on the host (mounts, cgroups, network interfaces, a dockerd of a
killed run) and how each is found and removed without touching anything else."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from .process import log

CGROUP_PARENT = "/keepnotes-e2e"
# A private engine's exec root: in /tmp, not TMPDIR, for a short socket path (108 bytes at most).
EXEC_ROOTS = Path("/tmp")  # noqa: S108 - each one is made by mkdtemp (mode 0700)
EXEC_ROOT_PREFIX = "kn-dockerd-"


def mount_points_below(root: Path) -> list[str]:
    prefix = str(root).rstrip("/") + "/"
    found = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            mount_point = line.split()[4].encode().decode("unicode_escape")
            if mount_point == str(root) or mount_point.startswith(prefix):
                found.append(mount_point)
    return sorted(found, key=len, reverse=True)


def unmount_below(root: Path) -> None:
    for mount_point in mount_points_below(root):
        subprocess.run(["umount", "-l", mount_point], check=False, capture_output=True)


def remove_tree(path: Path) -> None:
    """rm -rf that first unmounts what is mounted below and never crosses into another mount."""
    if not path.exists():
        return
    unmount_below(path)
    subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=False, capture_output=True)


def network_interfaces() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def remove_new_interfaces(before: set[str]) -> None:
    """Bridges and veths an engine made and left behind; the machine's own are not touched."""
    for interface in network_interfaces() - before:
        if interface.startswith(("br-", "veth", "docker")):
            subprocess.run(["ip", "link", "delete", interface], check=False, capture_output=True)


def dockerd_running_with(argument: str) -> bool:
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if argument.encode() in cmdline.read_bytes().split(b"\0"):
                return True
    return False


def stop_stale_dockerd(record: Path) -> None:
    """A dockerd left on our cached data root by a killed run: stop it, by its recorded pid."""
    if not record.exists():
        return
    with contextlib.suppress(ValueError, OSError):
        pid_text, data_root = record.read_text().split(maxsplit=1)
        pid = int(pid_text)
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if b"dockerd" in Path(cmdline[0].decode()).name.encode() and any(
            argument == f"--data-root={data_root.strip()}".encode() for argument in cmdline
        ):
            log(f"stopping a dockerd left by an earlier run (pid {pid})")
            os.kill(pid, signal.SIGTERM)
            for _ in range(120):
                if not Path(f"/proc/{pid}").exists():
                    break
                time.sleep(0.5)
            else:
                os.kill(pid, signal.SIGKILL)
    record.unlink(missing_ok=True)


def remove_stale_exec_roots(*, keep: Path) -> None:
    """Exec roots of engines that died with a killed run (their dockerd is gone)."""
    for exec_root in EXEC_ROOTS.glob(f"{EXEC_ROOT_PREFIX}*"):
        if exec_root == keep or not exec_root.is_dir():
            continue
        young = time.time() - exec_root.stat().st_mtime < 600  # maybe a run starting up
        if young or dockerd_running_with(f"--exec-root={exec_root}"):
            continue
        log(f"removing {exec_root}, left by a dockerd that is gone")
        remove_tree(exec_root)


def our_cgroups() -> set[Path]:
    """The cgroups the private engine puts its containers and build steps in (v1 and v2)."""
    names = (CGROUP_PARENT.strip("/"), "docker")
    root = Path("/sys/fs/cgroup")
    return {path for name in names for path in (*root.glob(name), *root.glob(f"*/{name}"))}


def remove_empty_cgroups(before: set[Path]) -> None:
    """The engine leaves its parent cgroups behind: remove ours, and `docker` if it made it.

    Only empty ones go: rmdir fails on a cgroup that has processes or children.
    """
    current = our_cgroups()
    ours = {path for path in current if path.name == CGROUP_PARENT.strip("/")}
    for parent in (current - before) | ours:
        for directory, _, _ in sorted(os.walk(parent), key=lambda entry: -len(entry[0])):
            with contextlib.suppress(OSError):
                os.rmdir(directory)
