"""The benchmark's dataset, made with SQL in seconds: users, notes, and a bearer token per user.

Each user's notes get consecutive ids, so a load script can pick "a random id the caller owns"
from a range, and tell whose page a cursor is from the ids on it.
"""

import random
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import connection

from accounts.services import token_create

USERNAME_PREFIX = "bench-"
WORDS_PER_NOTE = 40
VOCABULARY_SIZE = 2000


def vocabulary(size: int = VOCABULARY_SIZE) -> list[str]:
    """Made-up words (no English stop words, so each is searchable), always the same ones."""
    rng = random.Random(5)  # noqa: S311 (test data)
    onsets, vowels = "bcdfghjklmnprstvz", "aeiou"
    words: set[str] = set()
    while len(words) < size:
        syllables = rng.randint(2, 3)
        words.add("".join(rng.choice(onsets) + rng.choice(vowels) for _ in range(syllables)))
    return sorted(words)


@dataclass(frozen=True)
class Owner:
    user_id: int
    token: str
    first_id: int
    last_id: int


SEED_USERS = """
    INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email,
                           is_staff, is_active, date_joined)
    SELECT '!', false, %(prefix)s || g, '', '', '', false, true, now()
    FROM generate_series(1, %(users)s) AS g
"""

# One INSERT ... SELECT, ordered by owner, so each owner's ids are consecutive. The words of a
# note are drawn in a LATERAL subquery that refers to the row, so it is drawn again per row.
SEED_NOTES = """
    INSERT INTO notes_note (owner_id, title, body, tags, created, updated)
    SELECT u.id, text.title, text.body,
           ARRAY['tag' || (g %% 20), 'tag' || ((g * 7 + u.n) %% 20)]::varchar(50)[],
           now() - (%(per_user)s - g + 1) * interval '10 minutes' + u.n * interval '1 ms',
           now() - (%(per_user)s - g + 1) * interval '10 minutes' + u.n * interval '1 ms'
    FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM auth_user
          WHERE username LIKE %(prefix)s || '%%') AS u
    CROSS JOIN generate_series(1, %(per_user)s) AS g
    CROSS JOIN LATERAL (
        SELECT initcap(string_agg(word, ' ') FILTER (WHERE i <= 4)) AS title,
               string_agg(word, ' ') AS body
        FROM (SELECT i, (%(words)s::text[])[1 + floor(random() * %(nwords)s)::int + 0 * g] AS word
              FROM generate_series(1, %(per_note)s) AS i) AS drawn
    ) AS text
    ORDER BY u.id, g
"""

OWNER_RANGES = """
    SELECT owner_id, min(id), max(id), count(*) FROM notes_note
    WHERE owner_id IN (SELECT id FROM auth_user WHERE username LIKE %(prefix)s || '%%')
    GROUP BY owner_id ORDER BY owner_id
"""


def seed(*, users: int, notes: int) -> tuple[list[Owner], list[str]]:
    """Create `users` users sharing `notes` notes, one token each; return them and the words."""
    words = vocabulary()
    per_user = max(1, notes // users)
    params = {
        "prefix": USERNAME_PREFIX,
        "users": users,
        "per_user": per_user,
        "per_note": WORDS_PER_NOTE,
        "words": words,
        "nwords": len(words),
    }
    with connection.cursor() as cursor:
        cursor.execute(SEED_USERS, params)
        cursor.execute(SEED_NOTES, params)
        cursor.execute(OWNER_RANGES, params)
        ranges = cursor.fetchall()
    for owner_id, first, last, count in ranges:
        if last - first + 1 != count:
            raise RuntimeError(f"user {owner_id}'s notes are not consecutive ids")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    users_by_id = get_user_model().objects.in_bulk([row[0] for row in ranges])
    owners = [
        # The app's own service: tokens are hashed exactly as the server checks them.
        Owner(
            user_id=owner_id,
            token=token_create(user=users_by_id[owner_id])[0],
            first_id=first,
            last_id=last,
        )
        for owner_id, first, last, _ in ranges
    ]
    return owners, words


def last_seeded_id() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(id), 0) FROM notes_note")
        return cursor.fetchone()[0]


def forget_writes(after_id: int) -> int:
    """Delete what the write scenario added, so every configuration sees the same data."""
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM notes_note WHERE id > %s", [after_id])
        deleted = cursor.rowcount
        cursor.execute("VACUUM ANALYZE notes_note")
    return deleted
