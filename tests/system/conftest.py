import os
import signal

import pytest

from pgembedded import cluster
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
    # Every postmaster started from the folder, also one whose data folder is gone.
    data_dir = tmp_path / "data"
    for pid in cluster.postmasters(data_dir, EmbeddedPostgres(data_dir).socket_dir):
        os.kill(pid, signal.SIGKILL)
