"""GET /api/v1/users: staff only, paginated by cursor."""

import pytest

from tests.errors import json_error

pytestmark = pytest.mark.django_db

USERS_URL = "/api/v1/users"


@pytest.fixture
def staff(make_user):
    return make_user("staff", is_staff=True)


def test_staff_lists_users(client_for, staff, user):
    response = client_for(staff).get(USERS_URL)

    assert response.status_code == 200, response.content
    body = response.json()
    assert [item["username"] for item in body["items"]] == ["staff", "alice"]
    assert body["next"] is None
    assert all("password" not in item for item in body["items"])


def test_staff_walks_every_user_once_with_limit_and_next(client_for, staff, make_user):
    for name in ["u1", "u2", "u3", "u4"]:
        make_user(name)
    staff_api = client_for(staff)

    seen, pages, url = [], 0, f"{USERS_URL}?limit=2"
    while url:
        body = staff_api.get(url).json()
        assert len(body["items"]) <= 2
        seen += [item["username"] for item in body["items"]]
        pages += 1
        url = body["next"] and f"{USERS_URL}?limit=2&cursor={body['next']}"

    assert seen == ["staff", "u1", "u2", "u3", "u4"]
    assert pages == 3


def test_non_staff_is_forbidden(api):
    assert json_error(api.get(USERS_URL), 403) == {"detail": "Staff only."}


def test_anonymous_is_unauthorized(anonymous, staff):
    json_error(anonymous.get(USERS_URL), 401)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("cursor=abc", "cursor"),
        ("cursor=-1", "cursor"),
        (f"cursor={2**70}", "cursor"),
    ],
)
def test_bad_paging_parameters_are_422(client_for, staff, query, field):
    body = json_error(client_for(staff).get(f"{USERS_URL}?{query}"), 422)

    assert [error["field"] for error in body["errors"]] == [field]
