"""With read replicas, the task tables are still read on the primary (tasks/routers.py)."""

from django.db.utils import ConnectionRouter
from django_tasks_db.models import DBTaskResult

from core.replicas import routing
from notes.models import Note
from tasks.models import PeriodicRun

ROUTERS = ["tasks.routers.TasksOnPrimaryRouter", "core.replicas.PrimaryReplicaRouter"]


def test_a_get_routed_to_a_replica_reads_the_task_tables_on_the_primary():
    router = ConnectionRouter(ROUTERS)

    with routing("replica_1"):  # what ReadYourWritesMiddleware does for a GET
        assert router.db_for_read(Note) == "replica_1", "other models do read the replica"
        assert router.db_for_read(DBTaskResult) == "default"
        assert router.db_for_read(PeriodicRun) == "default"
        assert router.db_for_write(DBTaskResult) == "default"
