"""The task queue as metrics: what the metrics port's collector reads from the queue table."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from server.metrics_port import DataPromiseCollector
from tasks.tasks import prune_finished_tasks


def scrape() -> dict[tuple[str, str], float]:
    """One scrape of the data-promise collector: (sample name, state label) -> value."""
    registry = CollectorRegistry()
    registry.register(DataPromiseCollector())
    text = generate_latest(registry).decode()
    return {
        (sample.name, sample.labels.get("state", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("keepnotes_task")
    }


# transaction=True: the collector closes its connections after each scrape, as it must in the
# serve process; inside a test's transaction that would roll the enqueued task back.
@pytest.mark.django_db(transaction=True)
def test_a_queued_task_is_counted_and_its_wait_is_the_oldest():
    empty = scrape()
    assert empty[("keepnotes_tasks", "queued")] == 0
    assert empty[("keepnotes_task_oldest_queued_age_seconds", "")] == 0

    result = prune_finished_tasks.enqueue()
    DBTaskResult.objects.filter(id=result.id).update(
        enqueued_at=timezone.now() - timedelta(minutes=20)
    )

    metrics = scrape()
    assert metrics[("keepnotes_tasks", "queued")] == 1
    assert metrics[("keepnotes_tasks", "running")] == 0
    assert metrics[("keepnotes_tasks", "failed")] == 0
    assert 20 * 60 <= metrics[("keepnotes_task_oldest_queued_age_seconds", "")] < 21 * 60
