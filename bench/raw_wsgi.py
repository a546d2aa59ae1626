"""The benchmark's "limit" reference: the same endpoints as plain WSGI + psycopg, no framework.

Same SQL as Django emits for each endpoint, same JSON, same bearer-token check, one psycopg
connection per server thread; served by the same server as production, with the same options.
Only what the benchmark calls is here, and only as far as it calls it. Run it with
`python -m bench.raw_wsgi` (PORT, DATA_DIR and the WEB_* variables as for `manage.py serve`).
"""

# ruff: noqa: S105, S608 (SQL text with placeholders, no secrets: ruff cannot tell)
import base64
import hashlib
import threading
from datetime import UTC, datetime
from urllib.parse import parse_qs

import orjson
import psycopg

NOTE_COLUMNS = (
    '"notes_note"."id", "notes_note"."owner_id", "notes_note"."title", "notes_note"."body", '
    '"notes_note"."tags", "notes_note"."created", "notes_note"."updated"'
)
TOKEN_SQL = (
    'SELECT "accounts_apitoken"."id", "accounts_apitoken"."user_id", '
    '"accounts_apitoken"."key_hash", "accounts_apitoken"."created", '
    '"accounts_apitoken"."expires", "auth_user"."id", "auth_user"."password", '
    '"auth_user"."last_login", "auth_user"."is_superuser", "auth_user"."username", '
    '"auth_user"."first_name", "auth_user"."last_name", "auth_user"."email", '
    '"auth_user"."is_staff", "auth_user"."is_active", "auth_user"."date_joined" '
    'FROM "accounts_apitoken" INNER JOIN "auth_user" '
    'ON ("accounts_apitoken"."user_id" = "auth_user"."id") '
    'WHERE ("accounts_apitoken"."expires" > %s AND "accounts_apitoken"."key_hash" = %s '
    'AND "auth_user"."is_active") ORDER BY "accounts_apitoken"."id" ASC LIMIT 1'
)
GET_SQL = (
    f'SELECT {NOTE_COLUMNS} FROM "notes_note" '
    'WHERE ("notes_note"."owner_id" = %s AND "notes_note"."id" = %s) '
    'ORDER BY "notes_note"."created" DESC, "notes_note"."id" DESC LIMIT 1'
)
SEARCH_DOCUMENT = (
    "to_tsvector('english'::regconfig, COALESCE(\"notes_note\".\"title\", '') || ' ' || "
    'COALESCE("notes_note"."body", \'\'))'
)
LIST_SQL = f'SELECT {NOTE_COLUMNS} FROM "notes_note" WHERE "notes_note"."owner_id" = %s'
CURSOR_FILTER = (
    ' AND ("notes_note"."created" < %s OR ("notes_note"."created" = %s AND "notes_note"."id" < %s))'
)
SEARCH_FILTER = f" AND {SEARCH_DOCUMENT} @@ (websearch_to_tsquery('english'::regconfig, %s))"
LIST_ORDER = ' ORDER BY "notes_note"."created" DESC, "notes_note"."id" DESC LIMIT %s'
INSERT_SQL = (
    'INSERT INTO "notes_note" ("owner_id", "title", "body", "tags", "created", "updated") '
    'VALUES (%s, %s, %s, %s::varchar(50)[], %s, %s) RETURNING "notes_note"."id"'
)

JSON_HEADERS = [("Content-Type", "application/json")]
_local = threading.local()
connection_kwargs: dict = {}


def _connection() -> psycopg.Connection:
    connection = getattr(_local, "connection", None)
    if connection is None or connection.closed:
        if not connection_kwargs:  # a worker that did not inherit them (granian spawns)
            connection_kwargs.update(_where_to_connect())
        connection = psycopg.connect(autocommit=True, **connection_kwargs)
        _local.connection = connection
    return connection


def _answer(start_response, status: str, body) -> list[bytes]:
    start_response(status, JSON_HEADERS)
    return [orjson.dumps(body)]


def _note(row) -> dict:
    note_id, _owner, title, body, tags, created, updated = row
    return {
        "id": note_id,
        "title": title,
        "body": body,
        "tags": tags,
        "created": created,
        "updated": updated,
    }


def _cursor_of(row) -> str:
    raw = f"{row[5].isoformat()}|{row[0]}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    created, note_id = raw.split("|")
    return datetime.fromisoformat(created), int(note_id)


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/healthz":
        return _answer(start_response, "200 OK", {"status": "ok"})
    if not path.startswith("/api/v1/notes"):
        return _answer(start_response, "404 Not Found", {"detail": "Not found."})
    scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    db = _connection()
    now = datetime.now(UTC)
    user = None
    if scheme.lower() == "bearer" and token:
        key_hash = hashlib.sha256(token.encode()).hexdigest()
        user = db.execute(TOKEN_SQL, (now, key_hash)).fetchone()
    if user is None:
        return _answer(start_response, "401 Unauthorized", {"detail": "Unauthorized"})
    owner_id = user[5]
    method = environ["REQUEST_METHOD"]

    if path == "/api/v1/notes" and method == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        payload = orjson.loads(environ["wsgi.input"].read(length))
        title, body, tags = payload["title"].strip(), payload.get("body", ""), payload["tags"]
        created = datetime.now(UTC)
        updated = datetime.now(UTC)
        params = (owner_id, title, body, tags, created, updated)
        (note_id,) = db.execute(INSERT_SQL, params).fetchone()
        row = (note_id, owner_id, title, body, tags, created, updated)
        return _answer(start_response, "201 Created", _note(row))

    if path == "/api/v1/notes":
        query = parse_qs(environ.get("QUERY_STRING", ""))
        limit = int(query.get("limit", ["20"])[0])
        sql, params = LIST_SQL, [owner_id]
        if "q" in query:
            sql += SEARCH_FILTER
            params.append(query["q"][0])
        if "cursor" in query:
            created, note_id = _decode_cursor(query["cursor"][0])
            sql += CURSOR_FILTER
            params += [created, created, note_id]
        rows = db.execute(sql + LIST_ORDER, [*params, limit + 1]).fetchall()
        items = rows[:limit]
        next_cursor = _cursor_of(items[-1]) if len(rows) > limit else None
        return _answer(
            start_response, "200 OK", {"items": [_note(row) for row in items], "next": next_cursor}
        )

    note_id = int(path.rsplit("/", 1)[1])
    row = db.execute(GET_SQL, (owner_id, note_id)).fetchone()
    if row is None:
        return _answer(start_response, "404 Not Found", {"detail": "Not found."})
    return _answer(start_response, "200 OK", _note(row))


def _where_to_connect() -> dict:
    """The project's database, as Django would connect to it (the embedded one is started)."""
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.db import connection

    connection.ensure_connection()  # starts, or joins, the embedded PostgreSQL
    params = connection.get_connection_params()
    connection.close()
    # Only where to connect: psycopg's own defaults otherwise (it prepares repeated statements).
    wanted = ("dbname", "user", "password", "host", "port", "connect_timeout")
    return {key: params[key] for key in wanted if key in params}


def main() -> None:
    from bench import raw_wsgi  # this file runs as __main__: the server imports it again
    from server import wsgi_servers as serve

    raw_wsgi.connection_kwargs.update(_where_to_connect())

    serve.run_server("bench.raw_wsgi:application", serve.server_options())


if __name__ == "__main__":
    main()
