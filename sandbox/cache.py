"""Where everything slow is kept between runs: root filesystem tarballs, the compose plugin, and
the private engine's data root (images and build cache).

~/.cache/keepnotes-containers by default (CONTAINER_TESTS_CACHE); with CONTAINER_TESTS_CACHE=off
a temporary folder, deleted at the end, so everything starts from scratch.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

from .host import remove_tree


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
