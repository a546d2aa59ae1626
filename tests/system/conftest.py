import os
import signal

import pytest

from pgembedded.postgres import EmbeddedPostgres
from tests.support.processes import Server


@pytest.fixture
def servers(tmp_path):
    """Servers started by the test; whatever still runs at the end is stopped by its pid."""
    started: list[Server] = []
    yield started
    for server in started:
        if server.process.poll() is None:
            server.stop(signal.SIGKILL)
    pid = EmbeddedPostgres(tmp_path / "data").running_pid()
    if pid is not None:
        os.kill(pid, signal.SIGKILL)
