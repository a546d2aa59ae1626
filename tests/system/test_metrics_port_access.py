"""The metrics port under many scrapers, and with a token: a real `serve`, real PostgreSQL."""

import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from pgembedded.postgres import EmbeddedPostgres
from tests.support.processes import Server, free_port

TOKEN = "metrics-" + "k3Jd9sLq2Wz8Xc4Vb7Nm1" * 2
SCRAPERS = 40
CLIENT_BACKENDS = (
    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
    "AND pid <> pg_backend_pid()"
)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("metrics-access")
    token_file = tmp_path / "metrics-token"
    token_file.write_text(TOKEN + "\n")
    metrics_port = free_port()
    server = Server(
        tmp_path / "data",
        METRICS_PORT=str(metrics_port),
        METRICS_TOKEN_FILE=str(token_file),
        WEB_CONCURRENCY="1",
    )
    yield f"http://127.0.0.1:{metrics_port}/metrics", tmp_path / "data"
    server.stop()


def scrape(url: str, authorization: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": authorization} if authorization else {}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (loopback http)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback)
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_without_the_token_the_metrics_port_answers_401(served):
    url, _ = served
    for authorization in (None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x"):
        status, body = scrape(url, authorization)
        assert status == 401, authorization
        assert "keepnotes_postgres_up" not in body
    # Negative control: with it, the metrics.
    status, body = scrape(url, f"Bearer {TOKEN}")
    assert status == 200
    assert "keepnotes_postgres_up 1.0" in body


def test_parallel_scrapes_do_not_multiply_database_connections(served):
    url, data_dir = served
    database = EmbeddedPostgres(data_dir)
    with database.connect(autocommit=True) as watcher:
        before = watcher.execute(CLIENT_BACKENDS).fetchone()[0]
        peak = before
        done = threading.Event()

        def watch():
            nonlocal peak
            while not done.is_set():
                peak = max(peak, watcher.execute(CLIENT_BACKENDS).fetchone()[0])
                time.sleep(0.002)

        watching = threading.Thread(target=watch)
        watching.start()
        try:
            with ThreadPoolExecutor(SCRAPERS) as pool:
                answers = list(
                    pool.map(lambda _: scrape(url, f"Bearer {TOKEN}"), range(SCRAPERS * 3))
                )
        finally:
            done.set()
            watching.join()
    assert {status for status, _ in answers} == {200}
    assert all("keepnotes_postgres_up 1.0" in body for _, body in answers)
    # One connection for the PostgreSQL statistics, one while the data promise is gathered.
    assert peak <= before + 2, f"{peak} client connections during the scrapes, {before} before"
