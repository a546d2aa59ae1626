"""Bulk import of notes, run by background tasks, exactly once even across crashes, fairly.

The request stores the notes in batches (ImportBatch rows) and enqueues the task in the same
transaction: the import exists with its task, or neither does. A user with IMPORTS_PER_USER
imports queued or running is refused another, and nothing is stored.

The tasks import one batch per transaction: the batch's notes are created, its row deleted and
its job's count moved on together, under a lock on the job. Killed anywhere (worker, server,
PostgreSQL), a task runs again (tasks/liveness.py) and finds only the batches not imported yet:
no note twice, none lost.

Each batch goes to whichever user's turn it is (tasks/fair.py), not necessarily to the task's own
import: a task busy with one user's big import takes another user's batch as soon as it is
queued, so no import waits behind more than the one batch being imported. A task returns once
its own import is done (or failed), whoever imported its batches.
"""

import itertools
import logging
from collections.abc import Iterable

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.tasks import task

from core.pagination import Page, keyset_page
from tasks import fair, liveness

from .conf import setting
from .models import ImportBatch, ImportJob, Note

logger = logging.getLogger(__name__)

# The name of the imports' fair turns (tasks/models.py OwnerTurn rows).
TURNS = "notes.imports"
# What a refused client is told to wait: an import of 10,000 notes takes about a second
# (docs/tasks.md, "Measured"), so by then one of the user's imports has usually finished.
RETRY_AFTER_SECONDS = 5
ACTIVE = (ImportJob.Status.QUEUED, ImportJob.Status.RUNNING)


def import_start(*, owner: User, notes: Iterable[dict]) -> ImportJob:
    """The import of `notes`, stored in batches as they come (an iterator may raise midway:
    then nothing is stored), with its task enqueued in the same transaction."""
    size = setting("IMPORT_BATCH_SIZE")
    limit = setting("IMPORTS_PER_USER")
    with transaction.atomic():
        # Two requests of one user at once count one after the other: the limit holds exactly.
        fair.hold_admission(queue=TURNS, owner=owner.pk)
        if ImportJob.objects.filter(owner=owner, status__in=ACTIVE).count() >= limit:
            raise fair.OwnerLimitReached(
                f"You already have {limit} imports queued or running, the most allowed "
                f"(IMPORTS_PER_USER); send this one again once one of them is done "
                f"(GET /api/v1/imports). Nothing was changed.",
                retry_after=RETRY_AFTER_SECONDS,
            )
        fair.enroll(queue=TURNS, owner=owner.pk)
        job = ImportJob.objects.create(owner=owner, total=0)
        for number, batch in enumerate(itertools.batched(notes, size, strict=False)):
            ImportBatch.objects.create(job=job, number=number, notes=list(batch))
            job.total += len(batch)
        job.save(update_fields=["total"])
        run_import.enqueue(job_id=job.pk)
    return job


@task
def run_import(job_id: int) -> int:
    """Import batches, each of whoever's turn it is, until this import is done; its count."""
    ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.QUEUED).update(
        status=ImportJob.Status.RUNNING
    )
    while (job := ImportJob.objects.get(pk=job_id)).status in ACTIVE:
        if job.batches.exists():
            import_turn(job_id)
        else:
            import_next_batch(job_id)  # none left: marks it done
    return job.imported


def import_turn(job_id: int) -> None:
    """Import one batch: the next one of whoever's turn it is, else the next one of job_id's."""
    serving = job_id  # the import a failure belongs to

    def serve(owner_id: int) -> bool:
        nonlocal serving
        job = (
            ImportJob.objects.select_for_update(skip_locked=True)
            .filter(owner_id=owner_id, status__in=ACTIVE)
            .filter(Exists(ImportBatch.objects.filter(job=OuterRef("pk"))))
            .order_by("created", "id")
            .first()
        )
        if job is None:
            return False
        serving = job.pk
        _import_first_batch(job)
        return True

    try:
        with transaction.atomic():
            waiting = (
                ImportBatch.objects.filter(job__status__in=ACTIVE)
                .values_list("job__owner_id", flat=True)
                .distinct()
            )
            if fair.serve_next(queue=TURNS, owners=list(waiting), serve=serve) is not None:
                return
        # Every user with batches waiting is being served by another worker right now: help with
        # this task's own import (waiting for its lock if another worker holds it).
        serving = job_id
        import_next_batch(job_id)
    except Exception as error:
        if liveness.lost_database(error):
            # Not the import's fault: its task runs again once the database is back (a
            # failover), and finds the batches not imported yet.
            raise
        ImportJob.objects.filter(pk=serving).update(
            status=ImportJob.Status.FAILED, error=f"{type(error).__name__}: {error}"[:1000]
        )
        if serving == job_id:
            raise
        # Another user's import failed: it is marked so (its own task then stops), this one goes on.
        logger.exception("Import %s failed while run by the task of import %s", serving, job_id)


def import_next_batch(job_id: int) -> bool:
    """Import the job's first waiting batch in one transaction; False once none is left."""
    with transaction.atomic():
        job = ImportJob.objects.select_for_update().get(pk=job_id)
        if not job.batches.exists():
            if job.status != ImportJob.Status.DONE:
                job.status = ImportJob.Status.DONE
                job.save(update_fields=["status", "updated"])
            return False
        _import_first_batch(job)
    return True


def _import_first_batch(job: ImportJob) -> None:
    """Create the notes of the (locked) job's first batch, delete it, and count them, at once."""
    batch = job.batches.order_by("number").first()
    assert batch is not None  # the caller found one, holding the job's lock
    Note.objects.bulk_create(
        Note(owner_id=job.owner_id, title=note["title"], body=note["body"], tags=note["tags"])
        for note in batch.notes
    )
    batch.delete()
    job.imported += len(batch.notes)
    # Done as soon as its last batch is in, whichever task imported it: the answer to the
    # client's GET does not wait for the import's own task to come round.
    finished = not job.batches.exists()
    job.status = ImportJob.Status.DONE if finished else ImportJob.Status.RUNNING
    job.save(update_fields=["imported", "status", "updated"])


def import_get(*, owner: User, import_id: int) -> ImportJob | None:
    return ImportJob.objects.filter(owner=owner, pk=import_id).first()


def import_list(*, owner: User, limit: int, cursor: str | None) -> Page[ImportJob]:
    """The owner's imports, newest first."""
    jobs = ImportJob.objects.filter(owner=owner)
    return keyset_page(jobs, order=("-created", "-id"), limit=limit, cursor=cursor)
