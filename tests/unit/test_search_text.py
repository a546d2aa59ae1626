"""notes.selectors.search_text: search text PostgreSQL always parses, with the same meaning."""

import re

import pytest
from django.db import DatabaseError, connection, transaction
from hypothesis import HealthCheck, given, settings

from notes.models import SEARCH_CONFIG
from notes.selectors import search_text
from tests.support.search_text import search_texts

pytestmark = pytest.mark.django_db

# PostgreSQL keeps pending NOTs on a stack of 32 (tsquery.c, STACKDEPTH).
REFUSED = "-" * 60


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (REFUSED, "--"),
        ("-" * 33 + "x", "-x"),
        ("budget " + "-" * 41 + "home", "budget -home"),
        ("x " + "- " * 40 + "y", "x " + " " * 40 + "--y"),
        ('"a b"' + "-" * 35 + "c", '"a b"-c'),
        ("a" + " !(-" * 40 + "b", "a" + " !(" * 40 + "--b"),
    ],
)
def test_a_run_of_nots_shrinks_to_one_or_two_keeping_its_parity(text, expected):
    assert search_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "run",
        'budget -"home office" or work',
        "-x --y",
        "x -- or y",  # two NOTs keep "or" a word: x AND y, where "x or y" would be x OR y
        "x" + "-" * 60 + "y",  # one hyphenated word, no NOT
    ],
)
def test_ordinary_search_text_is_unchanged(text):
    assert search_text(text) == text


def tsquery(text: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT websearch_to_tsquery(%s, %s)::text", [SEARCH_CONFIG, text])
        return cursor.fetchone()[0]


def test_postgresql_refuses_the_raw_text_and_parses_the_shrunk_one():
    with pytest.raises(DatabaseError, match="tsquery stack too small"), transaction.atomic():
        tsquery(REFUSED)
    assert tsquery(search_text(REFUSED)) == ""
    assert tsquery(search_text("x " + "-" * 41 + "y")) == "'x' & !'y'"


def same_matches(original: str, shrunk: str) -> bool:
    """Both texts match the same documents, among documents made of the words of `original`."""
    words = re.findall(r"\w+", original)
    documents = [words, words[::-1], words[::2], words[1::2], words[: len(words) // 2], []]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT bool_and((to_tsvector(%(c)s, d) @@ websearch_to_tsquery(%(c)s, %(a)s))"
            " = (to_tsvector(%(c)s, d) @@ websearch_to_tsquery(%(c)s, %(b)s)))"
            " FROM unnest(%(d)s::text[]) AS d",
            {"c": SEARCH_CONFIG, "a": original, "b": shrunk, "d": [" ".join(w) for w in documents]},
        )
        return cursor.fetchone()[0]


@given(text=search_texts())
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_postgresql_parses_any_search_text_and_it_finds_the_same_notes(text):
    shrunk = search_text(text)
    tsquery(shrunk)  # raises if PostgreSQL refuses it
    try:
        with transaction.atomic():
            tsquery(text)
    except DatabaseError:
        return  # the text itself was refused: nothing to compare with
    assert same_matches(text, shrunk), (text, shrunk)
