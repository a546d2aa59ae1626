"""Files attached to notes: their bytes in the protected store (filestore/), their rows here.

An upload is refused from its declared length before anything is read when it is over
ATTACHMENT_MAX_BYTES or over what is left of the owner's ATTACHMENT_QUOTA_BYTES. Its body is then
streamed into the store (`file_store`: hashed on the way, durable and archived when it returns),
and only then is the row that names it created; the quota is checked again under a lock on the
owner, so two uploads at once cannot both take its last bytes. Should anything fail after the
file is stored (the quota, the database), the file is named by no row, and the store's
housekeeping removes it after a grace period.

Both limits are 413s: the client must send less or delete something first. 507 is kept for the
server's own disk being full (filestore.errors.StorageFull), which frees up without the client.
"""

import re
from typing import BinaryIO

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Sum

from core.pagination import Page, keyset_page
from filestore.services import StoredFile, file_store

from .conf import attachment_too_large, setting
from .models import Attachment, Note

# Control characters (NUL, which PostgreSQL cannot store, included) mean nothing in a name.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class AttachmentRefused(Exception):
    """Over a limit (the message says which); nothing was stored."""

    status = 413


def clean_name(name: str) -> str:
    """The name as stored: as sent, with each control character replaced by "_"."""
    return _CONTROL.sub("_", name)


def quota_left(*, owner: User) -> int:
    used = Attachment.objects.filter(owner=owner).aggregate(used=Sum("size"))["used"] or 0
    return setting("ATTACHMENT_QUOTA_BYTES") - used


def attachment_check_room(*, owner: User, size: int) -> None:
    """Refuse an upload of `size` bytes before any of it is read: AttachmentRefused."""
    limit = setting("ATTACHMENT_MAX_BYTES")
    if size > limit:
        raise AttachmentRefused(attachment_too_large(limit))
    left = quota_left(owner=owner)
    if size > left:
        raise AttachmentRefused(_over_quota(size, left))


class BodyIncomplete(Exception):
    """The body ended before its declared length; no row names what was read."""


def attachment_receive(*, stream: BinaryIO, size: int) -> StoredFile:
    """The body's bytes, stored (at most `size`, its declared length, as a WSGI body is).

    A body cut short (a client gone midway, with no front door to have read it whole first) is
    BodyIncomplete: its bytes are stored but never named, and the housekeeping removes them.
    """
    stored = file_store(stream=stream, max_bytes=min(size, setting("ATTACHMENT_MAX_BYTES")))
    if stored.size != size:
        raise BodyIncomplete(
            f"The body ended after {stored.size} of the {size} bytes its Content-Length "
            "declared; nothing was attached."
        )
    return stored


def attachment_create(
    *, note: Note, stored: StoredFile, name: str, content_type: str
) -> Attachment:
    """The row naming the stored file, if the owner's quota still has room for it."""
    owner = note.owner
    with transaction.atomic():
        # One upload of this owner at a time past this line: the sum below stays true until
        # the row is in.
        User.objects.select_for_update().filter(pk=owner.pk).first()
        left = quota_left(owner=owner)
        if stored.size > left:
            raise AttachmentRefused(_over_quota(stored.size, left))
        return Attachment.objects.create(
            note=note,
            owner=owner,
            file=stored.name,
            name=clean_name(name),
            size=stored.size,
            sha256=stored.sha256,
            content_type=content_type,
        )


def attachment_delete(*, attachment: Attachment) -> None:
    """The row goes at once; its file stays in the archive for as long as a restore can name
    it, and leaves the store when no row names it (filestore's housekeeping)."""
    attachment.delete()


def attachment_list(*, note: Note, limit: int, cursor: str | None) -> Page[Attachment]:
    return keyset_page(
        Attachment.objects.filter(note=note), order=("-created", "-pk"), limit=limit, cursor=cursor
    )


def attachment_get(*, owner: User, note_id: int, attachment_id: int) -> Attachment | None:
    return Attachment.objects.filter(
        owner=owner, note_id=note_id, note__owner=owner, pk=attachment_id
    ).first()


def _over_quota(size: int, left: int) -> str:
    quota = setting("ATTACHMENT_QUOTA_BYTES")
    return (
        f"This attachment ({size} bytes) is over what is left of your {quota}-byte quota "
        f"({max(left, 0)} bytes, ATTACHMENT_QUOTA_BYTES): delete attachments first. "
        "Nothing was stored."
    )
