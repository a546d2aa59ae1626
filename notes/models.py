from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector
from django.db import models
from django.utils import timezone

from filestore.storage import protected_storage

TITLE_MAX_LENGTH = 200
BODY_MAX_LENGTH = 100_000
TAG_MAX_LENGTH = 50
MAX_TAGS = 20
SEARCH_CONFIG = "english"


def search_vector() -> SearchVector:
    """The full-text document of a note; queries must use this same expression to hit the index."""
    return SearchVector("title", "body", config=SEARCH_CONFIG)


class Note(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notes"
    )
    title = models.CharField(max_length=TITLE_MAX_LENGTH)
    body = models.TextField(blank=True, default="")
    tags = ArrayField(models.CharField(max_length=TAG_MAX_LENGTH), default=list, blank=True)
    created = models.DateTimeField(default=timezone.now, editable=False)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [
            # The list endpoint: one owner's notes, newest first, walked by cursor.
            models.Index(fields=["owner", "-created", "-id"], name="note_owner_created"),
            GinIndex(fields=["tags"], name="note_tags"),
            GinIndex(search_vector(), name="note_search"),
        ]

    def __str__(self) -> str:
        return self.title


class ImportJob(models.Model):
    """A bulk import (notes/imports.py): its notes wait in ImportBatch rows until imported."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="note_imports"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    total = models.PositiveIntegerField()
    imported = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    created = models.DateTimeField(default=timezone.now, editable=False)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["owner", "-created", "-id"], name="import_owner_created")]

    def __str__(self) -> str:
        return f"import {self.pk}: {self.imported}/{self.total} {self.status}"


class ImportBatch(models.Model):
    """Notes of an import not imported yet; deleted in the transaction that creates them."""

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="batches")
    number = models.PositiveIntegerField()
    notes = models.JSONField()

    class Meta:
        ordering = ["number"]
        verbose_name_plural = "import batches"  # Django's default adds an "s"
        constraints = [
            models.UniqueConstraint(fields=["job", "number"], name="import_batch_number"),
        ]

    def __str__(self) -> str:
        return f"batch {self.number} of import {self.job_id}"


ATTACHMENT_NAME_MAX_LENGTH = 1000
CONTENT_TYPE_MAX_LENGTH = 255
# "<sha256[:2]>/<sha256>": a stored file's name in the protected store (filestore/names.py).
STORED_NAME_LENGTH = 2 + 1 + 64


class Attachment(models.Model):
    """A file attached to a note: its bytes in the protected store, under their sha256."""

    note = models.ForeignKey(Note, on_delete=models.CASCADE, related_name="attachments")
    # The note's owner, kept on the row so that a user's quota is one indexed sum.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="note_attachments"
    )
    file = models.FileField(
        storage=protected_storage, max_length=STORED_NAME_LENGTH, editable=False
    )
    # As the client named it (control characters replaced): shown, and offered when downloaded.
    name = models.CharField(max_length=ATTACHMENT_NAME_MAX_LENGTH)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    content_type = models.CharField(max_length=CONTENT_TYPE_MAX_LENGTH)
    created = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [
            models.Index(fields=["note", "-created", "-id"], name="attachment_note_created"),
            models.Index(fields=["owner"], name="attachment_owner"),
        ]

    def __str__(self) -> str:
        return self.name
