"""The task tables are read where they are written: on the primary.

A worker claims a task by locking its row (SELECT ... FOR UPDATE SKIP LOCKED): a replica cannot
take that lock, and a lagging copy would show tasks as still queued. Put in front of
core.replicas.PrimaryReplicaRouter (config/settings.py); it answers nothing for other models.
"""

from django.db import DEFAULT_DB_ALIAS

TASK_APPS = {"django_tasks_database", "tasks"}  # django-tasks-db's label, and ours


class TasksOnPrimaryRouter:
    def db_for_read(self, model, **hints) -> str | None:
        return DEFAULT_DB_ALIAS if model._meta.app_label in TASK_APPS else None

    def db_for_write(self, model, **hints) -> str | None:
        return DEFAULT_DB_ALIAS if model._meta.app_label in TASK_APPS else None
