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
