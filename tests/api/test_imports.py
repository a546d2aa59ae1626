"""POST/GET /api/v1/imports: the bulk import's API, and the task it runs (notes/imports.py)."""

import json

import pytest
from django_tasks_db.models import DBTaskResult

from notes import imports
from notes.conf import setting
from notes.models import ImportJob, Note
from notes.schemas import IMPORT_MAX_NOTES
from server.front_door import LargeBody, large_bodies
from tests.support.errors import json_error

pytestmark = pytest.mark.django_db


def test_an_import_is_accepted_queued_and_run_by_its_task(api, user):
    notes = [{"title": f"t{n}", "body": "b", "tags": ["x"]} for n in range(3)]

    response = api.send("POST", "/api/v1/imports", json={"notes": notes})

    assert response.status_code == 202, response.content
    job_id = response.json()["id"]
    assert response.json() == {"id": job_id, "status": "queued"}
    assert response["Location"] == f"/api/v1/imports/{job_id}"
    [task] = DBTaskResult.objects.filter(task_path="notes.imports.run_import")
    assert task.args_kwargs == {"args": [], "kwargs": {"job_id": job_id}}

    assert imports.run_import.call(job_id=job_id) == 3
    assert api.get(f"/api/v1/imports/{job_id}").json() == {
        "id": job_id,
        "status": "done",
        "imported": 3,
        "total": 3,
        "error": "",
    }
    assert sorted(Note.objects.filter(owner=user).values_list("title", flat=True)) == [
        "t0",
        "t1",
        "t2",
    ]


def test_running_an_import_again_imports_nothing_twice(user, settings):
    settings.IMPORT_BATCH_SIZE = 2
    job = imports.import_start(
        owner=user, notes=[{"title": str(n), "body": "", "tags": []} for n in range(5)]
    )
    assert imports.import_next_batch(job.pk)  # then "killed": the task runs again from the start

    assert imports.run_import.call(job_id=job.pk) == 5
    assert Note.objects.filter(owner=user).count() == 5


def test_validation_errors_name_the_index_and_the_field(api):
    notes = [{"title": "fine"}, {"title": "fine too"}, {"title": "  ", "tags": ["x" * 51]}]

    response = api.send("POST", "/api/v1/imports", json={"notes": notes})

    body = json_error(response, 422)
    fields = {error["field"] for error in body["errors"]}
    assert fields == {"notes.2.title", "notes.2.tags.0"}, body
    assert not ImportJob.objects.exists()


@pytest.mark.parametrize("count", [0, IMPORT_MAX_NOTES + 1])
def test_an_empty_import_or_one_over_the_limit_is_refused(api, count):
    response = api.send("POST", "/api/v1/imports", json={"notes": [{"title": "t"}] * count})

    body = json_error(response, 422)
    assert [error["field"] for error in body["errors"]] == ["notes"], body
    assert not ImportJob.objects.exists()


def test_the_list_is_the_callers_own_newest_first_by_cursor(api, user, other_user):
    mine = [
        imports.import_start(owner=user, notes=[{"title": "t", "body": "", "tags": []}])
        for _ in range(3)
    ]
    imports.import_start(owner=other_user, notes=[{"title": "t", "body": "", "tags": []}])

    first = api.get("/api/v1/imports?limit=2").json()
    second = api.get(f"/api/v1/imports?limit=2&cursor={first['next']}").json()

    ids = [item["id"] for item in first["items"] + second["items"]]
    assert ids == [job.pk for job in reversed(mine)]
    assert second["next"] is None


def test_another_users_import_is_a_404(api, other_user):
    job = imports.import_start(owner=other_user, notes=[{"title": "t", "body": "", "tags": []}])

    assert json_error(api.get(f"/api/v1/imports/{job.pk}"), 404) == {"detail": "Not found."}


def test_an_idempotency_key_starts_one_import_and_replays_its_answer(api):
    body = {"notes": [{"title": "once"}]}
    headers = {"Idempotency-Key": "import-1"}

    first = api.send("POST", "/api/v1/imports", json=body, headers=headers)
    again = api.send("POST", "/api/v1/imports", json=body, headers=headers)

    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json() == first.json()
    assert again["Location"] == first["Location"]
    assert again["Idempotent-Replayed"] == "true"
    assert ImportJob.objects.count() == 1
    assert DBTaskResult.objects.filter(task_path="notes.imports.run_import").count() == 1


def test_an_import_may_be_larger_than_max_request_bytes(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    notes = [{"title": f"t{n}", "body": "b" * 100} for n in range(20)]  # about 2,700 bytes

    assert api.send("POST", "/api/v1/imports", json={"notes": notes}).status_code == 202
    # Every other endpoint keeps the global limit.
    json_error(api.send("POST", "/api/v1/notes", json={"title": "t", "body": "b" * 2000}), 413)


def test_an_import_over_its_own_limit_is_a_413_that_says_so(api, settings):
    settings.IMPORT_MAX_REQUEST_BYTES = 100

    response = api.send("POST", "/api/v1/imports", json={"notes": [{"title": "x" * 150}]})

    assert json_error(response, 413) == {
        "detail": "An import body is at most 100 bytes (IMPORT_MAX_REQUEST_BYTES); "
        "split it into several imports."
    }
    assert not ImportJob.objects.exists()


def test_the_default_import_limit_holds_ten_thousand_ordinary_notes():
    """10,000 notes of a 3,000-character body fit; 10,000 maximal ones (~966 MiB) do not."""
    note = {"title": "x" * 200, "body": "x" * 3_000, "tags": ["x" * 50] * 5}
    ordinary = len(json.dumps({"notes": [note] * IMPORT_MAX_NOTES}))
    assert ordinary < setting("IMPORT_MAX_REQUEST_BYTES")


def test_the_front_door_lets_as_much_through_to_the_imports_only(settings):
    settings.IMPORT_MAX_REQUEST_BYTES = 1234

    assert large_bodies()[0] == LargeBody(
        path="/api/v1/imports",
        max_bytes=1234,
        too_large="An import body is at most 1234 bytes (IMPORT_MAX_REQUEST_BYTES); "
        "split it into several imports.",
    )


def test_an_import_over_the_users_limit_is_a_429_with_retry_after(api, user, other_user, settings):
    settings.IMPORTS_PER_USER = 2
    body = {"notes": [{"title": "t"}]}
    for _ in range(2):
        assert api.send("POST", "/api/v1/imports", json=body).status_code == 202

    response = api.send("POST", "/api/v1/imports", json=body)

    detail = json_error(response, 429)["detail"]
    assert "IMPORTS_PER_USER" in detail and detail.endswith("Nothing was changed."), detail
    assert int(response["Retry-After"]) > 0
    assert ImportJob.objects.filter(owner=user).count() == 2
    # Another user has places of their own; a finished import frees one.
    imports.import_start(owner=other_user, notes=[{"title": "t", "body": "", "tags": []}])
    imports.run_import.call(job_id=ImportJob.objects.filter(owner=user).first().pk)
    assert api.send("POST", "/api/v1/imports", json=body).status_code == 202


def test_each_batch_goes_to_the_user_whose_turn_it_is(user, other_user, settings):
    """The task of a big import imports another user's batch as soon as it is queued."""
    settings.IMPORT_BATCH_SIZE = 1
    notes = [{"title": str(n), "body": "", "tags": []} for n in range(4)]
    big = imports.import_start(owner=user, notes=notes)
    second = imports.import_start(owner=user, notes=notes)
    imports.import_turn(big.pk)  # alice's first batch; then bob queues one note
    small = imports.import_start(owner=other_user, notes=notes[:1])

    imports.import_turn(big.pk)

    small.refresh_from_db()
    assert (small.status, small.imported) == ("done", 1), "bob's batch came next"
    assert imports.run_import.call(job_id=big.pk) == 4
    second.refresh_from_db()
    assert second.imported == 0, "alice's imports go oldest first"
    assert imports.run_import.call(job_id=small.pk) == 1  # its own task finds it done


def test_a_failing_batch_fails_its_own_import_not_the_one_whose_task_ran_it(
    user, other_user, settings
):
    settings.IMPORT_BATCH_SIZE = 1
    big = imports.import_start(owner=user, notes=[{"title": "t", "body": "", "tags": []}] * 3)
    imports.import_turn(big.pk)
    broken = imports.import_start(owner=other_user, notes=[{"title": "t"}])  # no body, no tags

    assert imports.run_import.call(job_id=big.pk) == 3

    broken.refresh_from_db()
    assert broken.status == "failed" and "KeyError" in broken.error, broken.error
