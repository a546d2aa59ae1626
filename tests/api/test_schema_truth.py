"""A page of notes sent straight from its rows still says exactly what the schema says.

list_notes answers with the rows as JSON, without ninja's response validation. These tests hold
that answer, and one note's (which ninja does validate), to the published OpenAPI schema and to
what validating through the schema would have sent, byte for byte.
"""

import orjson
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from notes import selectors
from notes.schemas import NoteOut, NotePageOut
from notes.services import note_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def notes(user):
    made = [
        note_create(owner=user, title="plain", body="", tags=[]),
        note_create(owner=user, title="Ünïcödé ✓ 日本", body="two\nlines\ttab", tags=["a", "b c"]),
        note_create(owner=user, title="t" * 200, body="x" * 5000, tags=["z"] * 3),
    ]
    return [note.pk for note in made]


def validator(api, path: str) -> Draft202012Validator:
    document = api.get("/api/openapi.json").json()
    response = document["paths"][path]["get"]["responses"]["200"]
    registry = Registry().with_resource(
        "urn:openapi", Resource.from_contents(document, default_specification=DRAFT202012)
    )
    reference = response["content"]["application/json"]["schema"]["$ref"]  # "#/components/..."
    return Draft202012Validator({"$ref": "urn:openapi" + reference}, registry=registry)


def test_a_page_matches_the_schema_and_the_validating_path(api, user, notes):
    response = api.get("/api/v1/notes?limit=2")
    assert response.status_code == 200
    body = response.json()
    validator(api, "/api/v1/notes").validate(body)
    assert len(body["items"]) == 2 and body["next"]

    validated = NotePageOut.model_validate(selectors.note_list(owner=user, limit=2))
    assert response.content == orjson.dumps(validated.model_dump())
    assert response["Content-Type"] == api.get(f"/api/v1/notes/{notes[0]}")["Content-Type"]


def test_one_note_matches_the_schema_and_the_validating_path(api, user, notes):
    for note_id in notes:
        response = api.get(f"/api/v1/notes/{note_id}")
        assert response.status_code == 200
        validator(api, "/api/v1/notes/{note_id}").validate(response.json())
        validated = NoteOut.model_validate(selectors.note_get(owner=user, note_id=note_id))
        assert response.content == orjson.dumps(validated.model_dump())
