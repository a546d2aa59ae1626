"""A Docker engine to run the containers on: the machine's own (`docker info` answers) unless
CONTAINER_TESTS_ENGINE says otherwise, else a private `dockerd` with its own data root, exec
root, socket and pid file, no iptables rules, no default bridge and no ip_forward change,
stopped at the end."""

from __future__ import annotations

import contextlib
import ctypes
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from .cache import Cache
from .host import (
    CGROUP_PARENT,
    EXEC_ROOT_PREFIX,
    EXEC_ROOTS,
    network_interfaces,
    our_cgroups,
    remove_empty_cgroups,
    remove_new_interfaces,
    remove_stale_exec_roots,
    remove_tree,
    stop_stale_dockerd,
    unmount_below,
)
from .process import (
    RESULTS_DIR,
    SandboxError,
    Unavailable,
    inherited_environment,
    is_root,
    run,
)
from .rootfs import compose_plugin_for_private_engine
from .settings import Settings


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
        self.exec_root = Path(tempfile.mkdtemp(prefix=EXEC_ROOT_PREFIX, dir=EXEC_ROOTS))
        data_root = cache.lock_engine_data_root()
        self.temporary_data_root = data_root is None
        self.data_root = data_root or Path(tempfile.mkdtemp(prefix="kn-dockerd-data-"))
        self.socket = self.exec_root / "docker.sock"
        self.log_path = RESULTS_DIR / "dockerd.log"
        self.process: subprocess.Popen | None = None
        self.interfaces_before = network_interfaces()
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
        if not self.temporary_data_root:  # without the lock, the record is another live run's
            stop_stale_dockerd(self.cache.path("engine.pid"))
        remove_stale_exec_roots(keep=self.exec_root)
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
                raise SandboxError(f"dockerd exited {self.process.returncode}: {self._log_tail()}")
            probe = self.docker("version", "-f", "{{.Server.Version}}", check=False, timeout=10)
            if probe.returncode == 0:
                self.description = f"a private dockerd {probe.stdout.strip()} ({self.data_root})"
                self.purge()
                return
            time.sleep(0.5)
        raise SandboxError(f"dockerd did not answer within 90 s: {self._log_tail()}")

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text().splitlines()[-30:])
        return ""

    def purge(self) -> None:
        """All of this engine is ours: no container, network or volume outlives a run (one
        left by a killed run goes at the next start). Images and the build cache stay."""
        with contextlib.suppress(SandboxError):
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
            with contextlib.suppress(SandboxError):
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
        remove_new_interfaces(self.interfaces_before)
        unmount_below(self.data_root)
        remove_empty_cgroups(self.cgroups_before)
        remove_tree(self.exec_root)
        if self.temporary_data_root:
            remove_tree(self.data_root)


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
