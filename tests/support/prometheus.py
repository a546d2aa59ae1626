"""A real Prometheus (Debian's `prometheus` binary) on loopback, scraping what a test names."""

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from bench.processes import free_port

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")


class Prometheus:
    """Prometheus scraping `targets` (host:port) every `interval`, its data in `folder`."""

    def __init__(self, folder: Path, targets: list[str], interval: str = "1s"):
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        config = folder / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": interval, "evaluation_interval": interval},
                    "scrape_configs": [
                        {"job_name": "keepnotes", "static_configs": [{"targets": targets}]}
                    ],
                }
            )
        )
        self.log = folder / "prometheus.log"
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={folder / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def query(self, promql: str) -> list:
        """The result vector of an instant query (empty when nothing matches)."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode(
            {"query": promql}
        )
        with urllib.request.urlopen(url, timeout=5) as response:
            answer = json.load(response)
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def value(self, promql: str) -> float | None:
        """The single value `promql` gives, or None while it gives nothing."""
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, promql: str, expected: float, timeout: float = 30) -> float | None:
        """Poll until `promql` gives `expected` (scrapes come every interval); the last value."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                last = self.value(promql)
            except OSError:
                last = None  # not listening yet
            if last == expected:
                return last
            time.sleep(0.25)
        return last

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
