"""Background tasks with real processes: `serve` and the task workers it runs beside the web
server, on a throwaway embedded PostgreSQL (tasks/, server/task_workers.py, docs/tasks.md).
"""

import os
import re
import signal
from contextlib import suppress

import pytest

from tests.support.processes import Server, manage, wait_until
from tests.support.task_queue import (
    process_gone,
    shell_json,
    task_status,
    worker_pids,
)

FAST = {"TASK_POLL_MILLISECONDS": "50", "TASK_WORKERS": "1"}  # one worker, as shipped

ENQUEUE_ROLLED_BACK_AND_COMMITTED = """
import json
from django.db import transaction
from idempotency.tasks import purge_expired_idempotency_keys as purge

class Undo(Exception):
    pass

try:
    with transaction.atomic():
        rolled_back = purge.enqueue()
        raise Undo
except Undo:
    pass
with transaction.atomic():
    committed = purge.enqueue()
print(json.dumps([rolled_back.id, committed.id]))
"""


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


@pytest.fixture
def servers():
    started: list[Server] = []
    yield started
    for server in started:
        if server.process.poll() is None:
            server.stop(signal.SIGKILL)


def test_a_task_enqueued_in_a_rolled_back_transaction_never_exists(data_dir, servers):
    servers.append(server := Server(data_dir, **FAST))
    rolled_back, committed = shell_json(data_dir, ENQUEUE_ROLLED_BACK_AND_COMMITTED)
    assert task_status(data_dir, rolled_back) == []
    assert wait_until(
        lambda: task_status(data_dir, committed) == ["SUCCESSFUL"], "the worker ran it", timeout=20
    )
    status = manage(data_dir, "status")
    assert status.returncode == 0, status.stderr
    [tasks_line] = [line for line in status.stdout.splitlines() if line.startswith("Tasks:")]
    assert re.search(r"\d+ queued.*, \d+ running, 0 failed$", tasks_line), tasks_line
    assert server.stop() == 0


def test_serve_runs_one_worker_by_default_restarts_it_and_none_when_told(data_dir, servers):
    servers.append(server := Server(data_dir, shipped=True, TASK_POLL_MILLISECONDS="50"))
    [worker] = wait_until(
        lambda: worker_pids(server.process.pid), "a task worker started", timeout=20
    )
    os.kill(worker, signal.SIGKILL)
    [again] = wait_until(
        lambda: [pid for pid in worker_pids(server.process.pid) if pid != worker],
        "a dead worker is replaced",
        timeout=20,
    )
    assert server.stop() == 0
    assert process_gone(again), "stopping serve stops its workers"

    # serve killed outright (no stop()): its worker does not outlive it.
    servers.append(killed := Server(data_dir, **FAST))
    [orphan] = wait_until(
        lambda: worker_pids(killed.process.pid), "a task worker started", timeout=20
    )
    os.kill(killed.process.pid, signal.SIGKILL)
    killed.process.wait(timeout=10)
    wait_until(lambda: process_gone(orphan), "the orphaned worker exited", timeout=10)
    with suppress(ProcessLookupError):  # its web workers, unless they are gone already
        os.killpg(killed.process.pid, signal.SIGKILL)

    servers.append(without := Server(data_dir, TASK_WORKERS="0"))
    assert worker_pids(without.process.pid) == []
    assert without.stop() == 0


PERIODIC_RUNS = """
import json
from collections import Counter
from django.db import connection, transaction
from django_tasks_db.models import DBTaskResult
from tasks.models import PeriodicRun
name = "idempotency.tasks.purge_expired_idempotency_keys"
with transaction.atomic():  # one snapshot: the workers go on enqueueing meanwhile
    connection.cursor().execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    tasks = DBTaskResult.objects.filter(task_path=name)
    print(json.dumps({
        "periods": PeriodicRun.objects.filter(name=name).count(),
        "tasks": tasks.count(),
        "statuses": sorted(Counter(tasks.values_list("status", flat=True)).items()),
    }))
"""


def test_a_periodic_task_runs_once_per_period_with_two_workers(data_dir, servers):
    servers.append(
        server := Server(
            data_dir, **{**FAST, "TASK_WORKERS": "2"}, HOUSEKEEPING_INTERVAL_SECONDS="1"
        )
    )
    wait_until(lambda: len(worker_pids(server.process.pid)) == 2, "two workers", timeout=20)
    runs = wait_until(
        lambda: (found := shell_json(data_dir, PERIODIC_RUNS))["periods"] >= 4 and found,
        "four periods went by",
        timeout=30,
        every=1,
    )
    assert server.stop() == 0
    # A period's row and its task commit together: one task per period, whatever the workers.
    assert runs["tasks"] == runs["periods"], runs
    finished = shell_json(data_dir, PERIODIC_RUNS)
    assert finished["tasks"] == finished["periods"], finished
    assert dict(finished["statuses"]).keys() <= {"SUCCESSFUL", "READY"}, finished


def test_with_replicas_the_task_router_comes_first(data_dir):
    routers = shell_json(
        data_dir,
        "import json; from django.conf import settings as s; print(json.dumps(s.DATABASE_ROUTERS))",
        DATABASE_REPLICA_URLS="postgres://app:secret@replica.invalid:5432/app",
    )
    assert routers[0] == "tasks.routers.TasksOnPrimaryRouter"
    assert routers[-1] == "core.replicas.PrimaryReplicaRouter", "the general rule comes last"
