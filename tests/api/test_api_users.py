"""GET /api/v1/users: staff with the auth.view_user permission only, paginated by cursor."""

import pytest

from tests.support.errors import json_error
from tests.support.permissions import grant

pytestmark = pytest.mark.django_db

USERS_URL = "/api/v1/users"


FORBIDDEN = {"detail": "Only staff with the view_user permission may list users."}


@pytest.fixture
def staff(make_user):
    """Staff who may view users, as in the admin."""
    staff = make_user("staff", is_staff=True)
    grant(staff, "auth.view_user")
    return staff


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
    assert json_error(api.get(USERS_URL), 403) == FORBIDDEN


def test_staff_without_the_view_user_permission_is_forbidden(client_for, make_user):
    """The admin refuses them the user list; so does the API (it once checked is_staff only)."""
    bare_staff = make_user("bare-staff", is_staff=True)

    assert json_error(client_for(bare_staff).get(USERS_URL), 403) == FORBIDDEN


def test_the_permission_without_staff_is_forbidden(client_for, user):
    grant(user, "auth.view_user")

    assert json_error(client_for(user).get(USERS_URL), 403) == FORBIDDEN


def test_a_superuser_has_the_permission_without_being_granted_it(client_for, django_user_model):
    root = django_user_model.objects.create_superuser("root", "root@example.com", "-")

    assert client_for(root).get(USERS_URL).status_code == 200


def test_a_permission_taken_away_acts_at_the_next_request(client_for, staff):
    staff_api = client_for(staff)
    assert staff_api.get(USERS_URL).status_code == 200

    staff.user_permissions.clear()

    assert json_error(staff_api.get(USERS_URL), 403) == FORBIDDEN


def test_anonymous_is_unauthorized(anonymous, staff):
    json_error(anonymous.get(USERS_URL), 401)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("cursor=" + "a" * 201, "cursor"),
    ],
)
def test_bad_paging_parameters_are_422(client_for, staff, query, field):
    body = json_error(client_for(staff).get(f"{USERS_URL}?{query}"), 422)

    assert [error["field"] for error in body["errors"]] == [field]


@pytest.mark.parametrize("cursor", ["abc", "-1", "1", str(2**70)])
def test_a_cursor_this_api_did_not_return_is_400_naming_it(client_for, staff, cursor):
    body = json_error(client_for(staff).get(USERS_URL, {"cursor": cursor}), 400)

    assert body["detail"].startswith("cursor:")
