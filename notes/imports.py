"""Bulk import of notes, run by a background task, exactly once even across crashes.

The request stores the notes in batches (ImportBatch rows) and enqueues the task in the same
transaction: the import exists with its task, or neither does. The task then imports one batch
per transaction: the batch's notes are created, its row deleted and the job's count moved on
together, under a lock on the job. Killed anywhere (worker, server, PostgreSQL), it runs again
(tasks/liveness.py) and finds only the batches not imported yet: no note twice, none lost.
"""

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.tasks import task

from .models import ImportBatch, ImportJob, Note
from .selectors import Page, decode_cursor, encode_cursor


def import_start(*, owner: AbstractBaseUser, notes: list[dict]) -> ImportJob:
    size = settings.IMPORT_BATCH_SIZE
    with transaction.atomic():
        job = ImportJob.objects.create(owner=owner, total=len(notes))
        ImportBatch.objects.bulk_create(
            ImportBatch(job=job, number=number, notes=notes[start : start + size])
            for number, start in enumerate(range(0, len(notes), size))
        )
        run_import.enqueue(job_id=job.pk)
    return job


@task
def run_import(job_id: int) -> int:
    """Import every batch still waiting; returns the job's count of imported notes."""
    ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.QUEUED).update(
        status=ImportJob.Status.RUNNING
    )
    try:
        while import_next_batch(job_id):
            pass
    except Exception as error:
        ImportJob.objects.filter(pk=job_id).update(
            status=ImportJob.Status.FAILED, error=f"{type(error).__name__}: {error}"[:1000]
        )
        raise
    job = ImportJob.objects.get(pk=job_id)
    return job.imported


def import_next_batch(job_id: int) -> bool:
    """Import the first waiting batch in one transaction; False once none is left."""
    with transaction.atomic():
        job = ImportJob.objects.select_for_update().get(pk=job_id)
        batch = job.batches.order_by("number").first()
        if batch is None:
            if job.status != ImportJob.Status.DONE:
                job.status = ImportJob.Status.DONE
                job.save(update_fields=["status", "updated"])
            return False
        Note.objects.bulk_create(
            Note(owner_id=job.owner_id, title=note["title"], body=note["body"], tags=note["tags"])
            for note in batch.notes
        )
        batch.delete()
        job.imported += len(batch.notes)
        job.status = ImportJob.Status.RUNNING
        job.save(update_fields=["imported", "status", "updated"])
    return True


def import_get(*, owner: AbstractBaseUser, import_id: int) -> ImportJob | None:
    return ImportJob.objects.filter(owner=owner, pk=import_id).first()


def import_list(*, owner: AbstractBaseUser, limit: int, cursor: str | None) -> Page:
    """The owner's imports, newest first, by the same cursor as the notes list."""
    jobs = ImportJob.objects.filter(owner=owner).order_by("-created", "-id")
    if cursor is not None:
        created, job_id = decode_cursor(cursor)
        jobs = jobs.filter(Q(created__lt=created) | Q(created=created, id__lt=job_id))
    found = list(jobs[: limit + 1])
    items = found[:limit]
    last = items[-1] if len(found) > limit else None
    return Page(items=items, next=encode_cursor(last.created, last.pk) if last else None)
