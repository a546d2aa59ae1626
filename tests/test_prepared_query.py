"""ops.prepared_query: the ORM's SQL compiled once, then run with other values."""

import pytest

from notes.models import Note
from ops.prepared_query import PreparedQuery

pytestmark = pytest.mark.django_db


def test_each_call_runs_the_orm_query_with_its_own_values(make_user):
    alice, bob = make_user("alice"), make_user("bob")
    kept = Note.objects.create(owner=alice, title="alice's", tags=["x"])
    Note.objects.create(owner=bob, title="bob's", tags=["x"])
    by_owner_and_tag = PreparedQuery(
        lambda owner_id, tag: (
            Note.objects.filter(owner_id=owner_id, tags__contains=[tag])
            .order_by("pk")
            .values_list("id", "owner_id", "title", "body", "tags", "created", "updated")
        ),
        owner_id=-1,
        tag="\x00tag",
    )
    assert by_owner_and_tag.rows(owner_id=alice.pk, tag="x")[0][:3] == (
        kept.pk,
        alice.pk,
        "alice's",
    )
    assert by_owner_and_tag.rows(owner_id=alice.pk, tag="y") == []
    [note] = by_owner_and_tag.instances(owner_id=alice.pk, tag="x")
    assert (note.pk, note.title, note.tags, note._state.adding) == (
        kept.pk,
        "alice's",
        ["x"],
        False,
    )
    note.title = "saved as any ORM instance"
    note.save()
    assert Note.objects.get(pk=kept.pk).title == "saved as any ORM instance"


def test_a_marker_the_query_does_not_use_is_refused_when_compiled():
    query = PreparedQuery(
        lambda owner_id, note_id: Note.objects.filter(owner_id=owner_id).values_list("id"),
        owner_id=-1,
        note_id=-2,
    )
    with pytest.raises(ValueError, match="note_id"):
        query.rows(owner_id=1, note_id=2)
