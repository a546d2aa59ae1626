"""The background tasks' part of `manage.py status` (core.status_reports): queued, running,
failed, and how long the oldest queued one has waited."""

from django.db import DatabaseError

from core.files import human_age
from tasks.selectors import queue_summary


def tasks_report(report: dict) -> dict:
    """`tasks` for the status report; nothing without a database or its tables."""
    if "server_version" not in report or report.get("rows") is None:
        return {}  # no database, or no tables yet
    try:
        summary = queue_summary()
    except DatabaseError:
        return {"tasks": None}  # the tasks' tables not migrated yet
    age = summary.oldest_queued_age
    return {
        "tasks": {
            "queued": summary.queued,
            "running": summary.running,
            "failed": summary.failed,
            "oldest_queued_seconds": age.total_seconds() if age is not None else None,
        }
    }


def task_lines(report: dict) -> list[tuple[str, str]]:
    tasks = report.get("tasks")
    if tasks is None:
        return []
    oldest = tasks["oldest_queued_seconds"]
    waiting = f", the oldest waiting {human_age(oldest)}" if oldest is not None else ""
    return [
        (
            "Tasks",
            f"{tasks['queued']} queued{waiting}, {tasks['running']} running, "
            f"{tasks['failed']} failed",
        )
    ]
