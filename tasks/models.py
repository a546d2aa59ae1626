from django.db import models


class PeriodicRun(models.Model):
    """One row per schedule and period: whichever worker inserts it enqueues that period's run."""

    name = models.CharField(max_length=200)
    period_start = models.DateTimeField()
    task_id = models.UUIDField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["name", "period_start"], name="periodic_run_once"),
        ]

    def __str__(self) -> str:
        return f"{self.name} for the period from {self.period_start:%Y-%m-%d %H:%M:%S}"


class OwnerTurn(models.Model):
    """When each owner of fairly shared work was last served, per queue (tasks/fair.py)."""

    queue = models.CharField(max_length=100)
    owner = models.BigIntegerField()
    served = models.DateTimeField(null=True)  # never: first in turn

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["queue", "owner"], name="owner_turn_once"),
        ]

    def __str__(self) -> str:
        return f"owner {self.owner} of {self.queue}"
