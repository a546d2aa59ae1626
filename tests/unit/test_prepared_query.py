"""core.prepared_query: the ORM's SQL compiled once, then run with other values."""

import pytest

from core.prepared_query import PreparedQuery
from notes.models import Note

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


def test_a_column_that_needs_the_orms_converters_is_refused_when_compiled():
    from django.db.models import JSONField, Value

    with_json = PreparedQuery(
        lambda owner_id: (
            Note.objects.filter(owner_id=owner_id)
            .annotate(meta=Value({"kind": "note"}, output_field=JSONField()))
            .values_list("id", "meta")
        ),
        owner_id=-1,
    )
    with pytest.raises(ValueError, match=r"columns \['meta'\] need the ORM's converters"):
        with_json.rows(owner_id=1)


def test_plain_columns_compile(make_user):
    """Negative control for the test above: the hot-path shapes have no converters."""
    plain = PreparedQuery(
        lambda owner_id: Note.objects.filter(owner_id=owner_id).values_list("id", "tags"),
        owner_id=-1,
    )
    assert plain.rows(owner_id=make_user("carol").pk) == []


def test_the_page_query_cache_holds_every_shape_the_api_allows():
    from notes import selectors

    selectors._page_query.cache_clear()
    for limit in range(1, selectors.PAGE_LIMIT_MAX + 1):
        for tag in (False, True):
            for query in (False, True):
                for after in (False, True):
                    selectors._page_query(limit, tag, query, after)
    info = selectors._page_query.cache_info()
    assert info.currsize == selectors.PAGE_LIMIT_MAX * 8, "nothing was evicted"
