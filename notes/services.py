from django.contrib.auth.models import User

from .models import Note


def note_create(*, owner: User, title: str, body: str, tags: list[str]) -> Note:
    return Note.objects.create(owner=owner, title=title, body=body, tags=tags)


def note_update(*, note: Note, changes: dict) -> Note:
    """Apply only the fields the client sent."""
    for field, value in changes.items():
        setattr(note, field, value)
    note.save(update_fields=[*changes, "updated"])
    return note


def note_delete(*, note: Note) -> None:
    note.delete()
