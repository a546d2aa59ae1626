"""Periodic schedules, the re-queueing of dead workers' tasks and of tasks cut off by the database
going away, on the database, no worker process."""

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from django.db import OperationalError, ProgrammingError, connections
from django.tasks import TaskResultStatus, task
from django_tasks_db.models import DBTaskResult

from idempotency.tasks import purge_expired_idempotency_keys
from tasks import liveness, periodic, worker
from tasks.models import PeriodicRun

pytestmark = pytest.mark.django_db

NAME = purge_expired_idempotency_keys.module_path
NOON = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def runs() -> list[datetime]:
    return list(PeriodicRun.objects.filter(name=NAME).values_list("period_start", flat=True))


def test_each_period_is_enqueued_once_whoever_asks(monkeypatch):
    monkeypatch.setattr(periodic, "_settled", {})
    hourly = periodic.Schedule(task=purge_expired_idempotency_keys, seconds=3600)
    monkeypatch.setattr(periodic, "_schedules", {NAME: hourly})

    assert periodic.enqueue_due(NOON + timedelta(minutes=1)) == [NAME]
    assert periodic.enqueue_due(NOON + timedelta(minutes=59)) == []
    monkeypatch.setattr(periodic, "_settled", {})  # another worker, which has seen nothing
    assert periodic.enqueue_due(NOON + timedelta(minutes=30)) == []
    assert periodic.enqueue_due(NOON + timedelta(hours=1)) == [NAME]

    assert runs() == [NOON, NOON + timedelta(hours=1)]
    enqueued = set(DBTaskResult.objects.filter(task_path=NAME).values_list("id", flat=True))
    assert enqueued == set(PeriodicRun.objects.values_list("task_id", flat=True))
    assert len(enqueued) == 2


def running_task(worker_id: str) -> DBTaskResult:
    result = purge_expired_idempotency_keys.enqueue()
    DBTaskResult.objects.filter(id=result.id).update(
        status=TaskResultStatus.RUNNING, worker_ids=[worker_id]
    )
    return DBTaskResult.objects.get(id=result.id)


def test_a_running_task_of_a_dead_worker_is_queued_again_a_live_ones_is_not():
    dead, alive = running_task("worker-dead"), running_task("worker-alive")
    other = connections.create_connection("default")  # the live worker's own session
    try:
        with other.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_lock(%s, hashtext(%s))",
                [liveness.LIVENESS_LOCK_CLASS, "worker-alive"],
            )
        assert liveness.requeue_orphans(except_worker="this-worker") == 1
    finally:
        other.close()

    dead.refresh_from_db()
    alive.refresh_from_db()
    assert (dead.status, dead.started_at) == (TaskResultStatus.READY, None)
    assert alive.status == TaskResultStatus.RUNNING
    # Its lock gone (the connection closed), the other worker counts as dead too.
    assert liveness.requeue_orphans(except_worker="this-worker") == 1


def test_periodic_runs_go_to_the_housekeeping_queue_which_the_housekeeper_runs(monkeypatch):
    monkeypatch.setattr(periodic, "_settled", {})
    hourly = periodic.Schedule(task=purge_expired_idempotency_keys, seconds=3600)
    monkeypatch.setattr(periodic, "_schedules", {NAME: hourly})
    periodic.enqueue_due(NOON)
    other_work = purge_expired_idempotency_keys.enqueue()  # the default queue: the loop's

    assert worker.run_housekeeping("worker-1") == 1

    [run] = DBTaskResult.objects.filter(queue_name=periodic.HOUSEKEEPING_QUEUE)
    assert (run.status, run.worker_ids) == (TaskResultStatus.SUCCESSFUL, ["worker-1"])
    assert DBTaskResult.objects.get(id=other_work.id).status == TaskResultStatus.READY
    assert worker.run_housekeeping("worker-1") == 0


@task
def cut_off_by_the_database() -> None:
    # As Django raises it for a connection libpq found closed (no SQLSTATE).
    raise OperationalError("server closed the connection unexpectedly") from (
        psycopg.OperationalError("server closed the connection unexpectedly")
    )


@task
def failing() -> None:
    raise ValueError("the task's own fault")


def test_only_an_ended_session_counts_as_the_database_going_away():
    other = connections.create_connection("default")
    try:
        with pytest.raises(OperationalError) as timeout, other.cursor() as cursor:
            cursor.execute("SET statement_timeout = 1")
            cursor.execute("SELECT pg_sleep(1)")
        with pytest.raises(ProgrammingError) as mistake, other.cursor() as cursor:
            cursor.execute("SELECT no_such_column FROM no_such_table")
        with pytest.raises(OperationalError) as ended, other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    finally:
        other.close()
    assert not liveness.lost_database(timeout.value)
    assert not liveness.lost_database(mistake.value)
    assert liveness.lost_database(ended.value)


def loop(worker_id: str) -> worker.TaskLoop:
    return worker.task_runner(worker_id=worker_id, queue_name="default")


def test_a_task_cut_off_by_the_database_going_away_is_queued_again_not_failed():
    cut, failed = cut_off_by_the_database.enqueue(), failing.enqueue()
    for result in (cut, failed):
        claimed = DBTaskResult.objects.get(id=result.id)
        claimed.claim("worker-1")
        if result is cut:
            with pytest.raises(OperationalError):
                loop("worker-1").run_task(claimed)  # up to its run(), which waits, then:
            assert liveness.requeue_own(worker_id="worker-2") == 0
            assert liveness.requeue_own(worker_id="worker-1") == 1
        else:
            loop("worker-1").run_task(claimed)

    statuses = {str(id): status for id, status in DBTaskResult.objects.values_list("id", "status")}
    assert statuses[cut.id] == TaskResultStatus.READY
    assert statuses[failed.id] == TaskResultStatus.FAILED
