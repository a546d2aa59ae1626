"""The project's compose.yaml, driven for the container tests: build, up, wait, inspect, down.

It runs on an engine and base images from the sandbox package, under a throwaway project name,
port and env file, so neither a developer's .env nor their volumes are touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
import urllib.error
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from sandbox.engine import Engine
from sandbox.images import BaseImages
from sandbox.process import PROXY_BUILD_ARGS, REPO, RESULTS_DIR, CommandFailed, SandboxError
from sandbox.settings import Settings
from tests.support.container_http import Browser, free_port


class StackError(SandboxError):
    """The compose stack did not do what the test needed."""


def compose_file_from_environment() -> Path:
    """compose.yaml, or CONTAINER_TESTS_COMPOSE_FILE (e.g. a broken copy, a negative control)."""
    return Path(os.environ.get("CONTAINER_TESTS_COMPOSE_FILE", REPO / "compose.yaml")).resolve()


@dataclass
class Stack:
    """The project's compose.yaml under a throwaway project name, port and env file."""

    engine: Engine
    settings: Settings
    images: BaseImages
    work: Path
    compose_file: Path = field(default_factory=compose_file_from_environment)
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
            # The archive's external volume, this stack's own (made by `up`, removed by close).
            "BACKUP_VOLUME": self.backups_volume,
            # The uploaded files' external volume, the same way.
            "MEDIA_VOLUME": self.media_volume,
        }
        lines = []
        for line in (REPO / ".env.example").read_text().splitlines():
            key, separator, _ = line.partition("=")
            if separator and not line.lstrip().startswith("#") and key.strip() in values:
                line = f"{key.strip()}={values.pop(key.strip())}"
            lines.append(line)
        lines += [f"{key}={value}" for key, value in values.items()]
        return "\n".join(lines) + "\n"

    def _build_override(self) -> Path:
        build: dict = {}
        # Every service built like the app (the worker, the backup) gets the same build
        # settings, so each runs the image under test (the same layers, from the build cache).
        override: dict = {"services": {name: {"build": build} for name in self.app_services()}}
        # The app's own task workers off (serve's TASK_WORKERS): the imports the test submits
        # can then only be run by the `worker` service, which is what it checks.
        override["services"]["app"]["environment"] = {"TASK_WORKERS": "0"}
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
        path = self.work / "build-override.compose.json"
        path.write_text(json.dumps(override, indent=2))
        return path

    def app_services(self) -> list[str]:
        """The services of the compose file built from the app's Dockerfile, as the app is."""
        services = yaml.safe_load(self.compose_file.read_text())["services"]
        app_build = services["app"].get("build")
        others = [
            name for name, each in services.items() if app_build and each.get("build") == app_build
        ]
        return ["app", *(name for name in others if name != "app")]

    # --- compose ---------------------------------------------------------------------------

    def compose(self, *args, env_extra: dict[str, str] | None = None, **kwargs):
        files = ["-f", self.compose_file, "-f", self.override]
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

    @property
    def database_user(self) -> str:
        """POSTGRES_USER of the env file (from .env.example)."""
        for line in self.env_file.read_text().splitlines():
            if line.startswith("POSTGRES_USER="):
                return line.partition("=")[2].strip()
        return "postgres"

    @property
    def backups_volume(self) -> str:
        return f"{self.project}_backups"

    @property
    def media_volume(self) -> str:
        return f"{self.project}_media"

    def up(self) -> float:
        """`up -d`, then wait for /readyz through the published port: seconds until ready.

        The archive's and the files' volumes are external: made first, as the README's one-time
        commands do."""
        started = time.monotonic()
        for volume in (self.backups_volume, self.media_volume):
            self.volumes_seen.add(volume)
            self.engine.docker("volume", "create", volume, timeout=120)
        try:
            self.compose("up", "--detach", timeout=600)
        except CommandFailed as error:
            raise StackError(f"{error}\n--- docker compose logs ---\n{self.logs(80)}") from error
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
        raise StackError(f"/readyz never answered 200 (last: {last})\n{self.logs(tail=80)}")

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
        raise StackError(f"{service} is {status!r}, not healthy, after {timeout:.0f} s")

    def container_id(self, service: str) -> str:
        container_id = self.compose("ps", "-q", service, log_file=None).stdout.strip()
        if not container_id:
            raise StackError(f"{service} is not running\n{self.logs(tail=80)}")
        return container_id

    def inspect(self, service: str) -> dict:
        output = self.engine.docker("inspect", self.container_id(service)).stdout
        return json.loads(output)[0]

    def exec(self, service: str, *command: str) -> str:
        return self.compose("exec", "-T", service, *command, log_file=None).stdout

    def create_superuser(self, username: str, password: str) -> None:
        """The README's `docker compose run --rm app python manage.py createsuperuser` (here
        with --noinput and the DJANGO_SUPERUSER_* variables that command reads)."""
        self.compose(
            "run", "--rm", "-T",
            "-e", f"DJANGO_SUPERUSER_USERNAME={username}",
            "-e", "DJANGO_SUPERUSER_PASSWORD",
            "-e", f"DJANGO_SUPERUSER_EMAIL={username}@example.com",
            "app", "python", "manage.py", "createsuperuser", "--noinput",
            env_extra={"DJANGO_SUPERUSER_PASSWORD": password},
            timeout=300,
        )  # fmt: skip

    def api_token(self, username: str, password: str) -> str:
        answer = Browser(self.base_url).request(
            "POST", "/api/v1/auth/token", json_body={"username": username, "password": password}
        )
        if answer.status != 201:
            raise StackError(f"no API token for {username}: {answer.status} {answer.body[:300]}")
        return answer.json()["token"]

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
        with contextlib.suppress(SandboxError):
            (RESULTS_DIR / "compose-logs.txt").write_text(self.logs(tail=2000))
        with contextlib.suppress(SandboxError):
            self._remember_volumes()
        self.compose(
            "down", "--volumes", "--remove-orphans", "--rmi", "local", check=False, timeout=600
        )
        for volume in sorted(self.volumes_seen):
            self.engine.docker("volume", "rm", "-f", volume, check=False, timeout=120)


def write_results(results: dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / "results.json"
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return path
