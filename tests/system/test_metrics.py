"""Prometheus metrics on their own port, scraped by a real Prometheus from a real `serve`."""

import json
import subprocess
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.mmap_dict import MmapedDict

from tests.support.processes import Server, free_port
from tests.support.prometheus import PROMETHEUS, Prometheus

pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="Debian's prometheus is not installed")

ROUTE = "/api/v1/notes/{note_id}"
REQUESTS_FOR_ROUTE = f'sum(keepnotes_http_requests_total{{route="{ROUTE}",method="GET"}})'


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A two-worker serve with its metrics port, and a real Prometheus scraping it every second.

    Shared by this module's tests (a serve takes seconds to start): each counts from where the
    previous one left the total.
    """
    tmp_path = tmp_path_factory.mktemp("metrics")
    (tmp_path / "tmp").mkdir()
    metrics_port = free_port()
    server = Server(
        tmp_path / "data",
        shipped=True,
        METRICS_PORT=str(metrics_port),
        WEB_CONCURRENCY="2",
        TMPDIR=str(tmp_path / "tmp"),  # where serve makes its multiprocess folder
    )
    prometheus = Prometheus(tmp_path / "prometheus", [f"127.0.0.1:{metrics_port}"])
    yield server, prometheus, metrics_port, tmp_path / "tmp"
    prometheus.stop()
    server.stop()
    subprocess.run(["pkill", "-KILL", "-f", str(tmp_path)], check=False)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (loopback http)
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def route_counts_by_worker(folder: Path) -> dict[str, float]:
    """Each process's own count of GETs of ROUTE, from its prometheus-client file."""
    counts = {}
    for path in folder.glob("keepnotes-metrics-*/counter_*.db"):
        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path)):
            _, name, labels, _ = json.loads(key)
            if name == "keepnotes_http_requests_total" and labels.get("route") == ROUTE:
                counts[path.stem] = counts.get(path.stem, 0) + value
    return counts


def test_prometheus_counts_the_requests_to_one_note_by_route_template(served):
    server, prometheus, metrics_port, _ = served
    token = server.token()
    status, note = server.request("POST", "/api/v1/notes", {"title": "t", "body": "b"}, token)
    assert status == 201
    before = sum(route_counts_by_worker(served[3]).values())
    for _ in range(7):
        assert server.request("GET", f"/api/v1/notes/{note['id']}", token=token)[0] == 200

    assert prometheus.wait_for(REQUESTS_FOR_ROUTE, before + 7) == before + 7
    by_status = prometheus.query(f'keepnotes_http_requests_total{{route="{ROUTE}"}}')
    assert {sample["metric"]["status"] for sample in by_status} == {"200"}, "a number, not 2xx"
    latency_count = f'sum(keepnotes_http_request_duration_seconds_count{{route="{ROUTE}"}})'
    assert prometheus.value(latency_count) == before + 7

    # Negative control: the raw path is nowhere, neither in Prometheus nor in the scrape itself.
    raw = f"/api/v1/notes/{note['id']}"
    assert prometheus.query(f'{{__name__=~"keepnotes_.+", route="{raw}"}}') == []
    assert prometheus.query('{__name__=~"keepnotes_.+", route=~".*/[0-9]+"}') == []
    status, scrape = get(f"http://127.0.0.1:{metrics_port}/metrics")
    assert status == 200 and f'route="{ROUTE}"' in scrape
    assert raw not in scrape

    # The application's own port never serves metrics.
    assert get(f"http://127.0.0.1:{server.port}/metrics")[0] == 404


def test_the_counts_of_both_workers_add_up(served):
    server, prometheus, _, tmp = served
    token = server.token()
    status, note = server.request("POST", "/api/v1/notes", {"title": "t", "body": "b"}, token)
    assert status == 201
    before = sum(route_counts_by_worker(tmp).values())
    sent = 0
    # Eight at a time: the front opens as many connections to granian, which the kernel hands
    # to either worker (one at a time, the front reuses one kept-alive connection).
    with ThreadPoolExecutor(8) as pool:
        while len(route_counts_by_worker(tmp)) < 2 and sent < 400:
            statuses = pool.map(
                lambda _: server.request("GET", f"/api/v1/notes/{note['id']}", token=token)[0],
                range(8),
            )
            assert set(statuses) == {200}
            sent += 8
    by_worker = route_counts_by_worker(tmp)
    assert len(by_worker) == 2, f"one worker served all {sent} requests: {by_worker}"
    assert sum(by_worker.values()) == before + sent
    total = prometheus.wait_for(REQUESTS_FOR_ROUTE, before + sent)
    assert total == before + sent, "Prometheus sees the sum of both workers"


def test_the_data_promise_and_postgresql_are_on_the_metrics_port(served):
    _, prometheus, metrics_port, _ = served
    status, scrape = get(f"http://127.0.0.1:{metrics_port}/metrics")
    assert status == 200
    for line in (
        "keepnotes_postgres_up 1.0",
        "keepnotes_ready 1.0",
        'keepnotes_disk_free_bytes{volume="data"}',
        'keepnotes_disk_free_bytes{volume="backups"}',
        "keepnotes_postgres_archive_failures_total",
        'keepnotes_postgres_connections{state="active"}',
        "keepnotes_replica_max_lag_seconds 30.0",
        'keepnotes_tasks{state="queued"}',
        "keepnotes_task_oldest_queued_age_seconds",
    ):
        assert line in scrape, line
    assert prometheus.wait_for('up{job="keepnotes"}', 1) == 1
