"""Bearer tokens over HTTP: issue, refuse, expire, revoke; and /me."""

from datetime import datetime, timedelta

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from accounts.models import ApiToken, hash_token
from accounts.services import token_create
from tests.support.api import PASSWORD, ApiClient
from tests.support.errors import json_error

pytestmark = pytest.mark.django_db

TOKEN_URL = "/api/v1/auth/token"


def login(client, username: str, password: str):
    return client.send("POST", TOKEN_URL, json={"username": username, "password": password})


def test_token_is_issued_for_valid_credentials(anonymous, user):
    response = login(anonymous, "alice", PASSWORD)

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"token", "expires"}
    assert body["token"].startswith("kn_")
    lifetime = timedelta(seconds=settings.API_TOKEN_LIFETIME_SECONDS)
    expires = datetime.fromisoformat(body["expires"])
    assert abs(expires - (timezone.now() + lifetime)) < timedelta(minutes=1)


def test_only_a_hash_of_the_token_is_stored(anonymous, user):
    raw = login(anonymous, "alice", PASSWORD).json()["token"]

    stored = ApiToken.objects.get(user=user)
    assert stored.key_hash != raw
    assert raw not in stored.key_hash
    assert stored.key_hash == hash_token(raw)


def test_issued_token_authenticates_as_its_user(anonymous, user):
    raw = login(anonymous, "alice", PASSWORD).json()["token"]

    response = ApiClient(raw).get("/api/v1/me")

    assert response.status_code == 200, response.content
    assert response.json()["username"] == "alice"


def test_wrong_password_and_unknown_user_get_the_same_401(anonymous, user):
    wrong_password = login(anonymous, "alice", "not the password")
    unknown_user = login(anonymous, "nobody", PASSWORD)

    assert json_error(wrong_password, 401) == json_error(unknown_user, 401)
    assert wrong_password.json() == {"detail": "Invalid username or password."}
    assert not ApiToken.objects.exists()


def test_inactive_user_gets_no_token(anonymous, make_user):
    make_user("carol", is_active=False)

    response = login(anonymous, "carol", PASSWORD)

    assert json_error(response, 401) == {"detail": "Invalid username or password."}
    assert not ApiToken.objects.exists()


def test_token_stops_working_when_its_user_is_made_inactive(api, user):
    assert api.get("/api/v1/me").status_code == 200

    user.is_active = False
    user.save(update_fields=["is_active"])

    json_error(api.get("/api/v1/me"), 401)


def test_expired_token_is_refused(user):
    raw, token = token_create(user=user)
    token.expires = timezone.now() - timedelta(seconds=1)
    token.save(update_fields=["expires"])

    json_error(ApiClient(raw).get("/api/v1/me"), 401)


def test_revoked_token_is_refused_and_other_tokens_still_work(client_for, user):
    revoked, kept = client_for(user), client_for(user)

    response = revoked.delete(TOKEN_URL)

    assert response.status_code == 204
    assert response.content == b""
    json_error(revoked.get("/api/v1/me"), 401)
    json_error(revoked.delete(TOKEN_URL), 401)
    assert kept.get("/api/v1/me").status_code == 200
    assert ApiToken.objects.filter(user=user).count() == 1


def test_revoking_needs_a_token(anonymous):
    json_error(anonymous.delete(TOKEN_URL), 401)


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer kn_not-a-real-token",
        "Basic YWxpY2U6cGFzc3dvcmQ=",
        "kn_token-without-scheme",
        "Bearer \x00",
    ],
)
def test_missing_or_garbage_authorization_is_401_json(user, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}

    response = Client(headers=headers).get("/api/v1/me")

    assert json_error(response, 401) == {"detail": "Unauthorized"}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"username": "alice"}, "password"),
        ({"password": PASSWORD}, "username"),
        ({"username": "", "password": PASSWORD}, "username"),
        ({"username": "alice", "password": PASSWORD, "remember": True}, "remember"),
        ({"username": 5, "password": PASSWORD}, "username"),
        ({"username": "ali\x00ce", "password": PASSWORD}, "username"),
    ],
)
def test_bad_token_request_is_422_naming_the_field(anonymous, user, payload, field):
    response = anonymous.send("POST", TOKEN_URL, json=payload)

    body = json_error(response, 422)
    assert field in [error["field"] for error in body["errors"]]
    assert not ApiToken.objects.exists()


def test_malformed_json_token_request_is_400(anonymous):
    response = anonymous.post(TOKEN_URL, data=b'{"username": ', content_type="application/json")

    assert "not valid JSON" in json_error(response, 400)["detail"]


def test_me_returns_the_caller(api, user, other_user):
    response = api.get("/api/v1/me")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"] == user.pk
    assert body["username"] == "alice"
    assert body["is_staff"] is False
    assert set(body) == {"id", "username", "email", "is_staff", "date_joined"}


def test_me_needs_a_token(anonymous):
    json_error(anonymous.get("/api/v1/me"), 401)
