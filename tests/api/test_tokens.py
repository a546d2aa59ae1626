"""Bearer tokens as their owner manages them: random, listed, revoked one by one or all at once.

Issuing, hashing, expiry and logout are in test_api_auth.py.
"""

import base64
import re
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from accounts.models import TOKEN_PREFIX, ApiToken
from accounts.services import superuser_ensure, token_create
from tests.support.api import PASSWORD, ApiClient
from tests.support.errors import json_error

pytestmark = pytest.mark.django_db

TOKENS_URL = "/api/v1/auth/tokens"
NEW_PASSWORD = "another long passphrase, never used"


def test_a_token_carries_256_random_bits(user):
    raws = {token_create(user=user)[0] for _ in range(50)}

    assert len(raws) == 50
    for raw in raws:
        assert raw.startswith(TOKEN_PREFIX)
        secret = raw.removeprefix(TOKEN_PREFIX)
        assert len(base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))) >= 32


# -- Listing ---------------------------------------------------------------------------------


def test_list_shows_the_callers_live_tokens_newest_first(client_for, user, other_user):
    _, first = token_create(user=user)
    _, expired = token_create(user=user)
    ApiToken.objects.filter(pk=expired.pk).update(expires=timezone.now() - timedelta(seconds=1))
    token_create(user=other_user)
    api = client_for(user)
    current = ApiToken.objects.filter(user=user).latest("pk")

    response = api.get(TOKENS_URL)

    assert response.status_code == 200, response.content
    body = response.json()
    assert [item["id"] for item in body["items"]] == [current.pk, first.pk]
    assert [item["current"] for item in body["items"]] == [True, False]
    assert set(body["items"][0]) == {"id", "created", "expires", "current"}
    assert body["next"] is None


def test_list_never_shows_a_token_value_or_hash(user):
    raw, token = token_create(user=user)

    content = ApiClient(raw).get(TOKENS_URL).content.decode()

    assert raw not in content
    assert raw.removeprefix(TOKEN_PREFIX) not in content
    assert token.key_hash not in content
    assert not re.search(r"[0-9a-f]{64}", content)


def test_list_pages_with_limit_and_next(client_for, user):
    for _ in range(4):
        token_create(user=user)
    api = client_for(user)

    seen, pages, url = [], 0, f"{TOKENS_URL}?limit=2"
    while url:
        body = api.get(url).json()
        assert len(body["items"]) <= 2
        seen += [item["id"] for item in body["items"]]
        pages += 1
        url = body["next"] and f"{TOKENS_URL}?limit=2&cursor={body['next']}"

    assert seen == sorted(ApiToken.objects.filter(user=user).values_list("pk", flat=True))[::-1]
    assert pages == 3


# -- Revoking one -----------------------------------------------------------------------------


def test_revoking_one_token_leaves_the_others(client_for, user):
    api = client_for(user)
    victim_raw, victim = token_create(user=user)

    response = api.delete(f"{TOKENS_URL}/{victim.pk}")

    assert response.status_code == 204
    assert response.content == b""
    json_error(ApiClient(victim_raw).get("/api/v1/me"), 401)
    assert api.get("/api/v1/me").status_code == 200
    assert [item["id"] for item in api.get(TOKENS_URL).json()["items"]] != [victim.pk]


def test_revoking_the_current_token_logs_out(api, user):
    current = ApiToken.objects.get(user=user)

    assert api.delete(f"{TOKENS_URL}/{current.pk}").status_code == 204

    json_error(api.get("/api/v1/me"), 401)


def test_another_users_token_is_404_and_survives(client_for, user, other_user):
    raw, theirs = token_create(user=other_user)

    response = client_for(user).delete(f"{TOKENS_URL}/{theirs.pk}")

    assert json_error(response, 404) == {"detail": "Not found."}
    assert ApiClient(raw).get("/api/v1/me").status_code == 200


def test_a_missing_token_is_404(api, user):
    missing = ApiToken.objects.latest("pk").pk + 1000

    assert json_error(api.delete(f"{TOKENS_URL}/{missing}"), 404) == {"detail": "Not found."}


# -- A new password revokes every token ------------------------------------------------------


def assert_all_revoked(raws: list[str]) -> None:
    for raw in raws:
        json_error(ApiClient(raw).get("/api/v1/me"), 401)


def test_set_password_and_save_revokes_every_token(user, other_user):
    raws = [token_create(user=user)[0] for _ in range(3)]
    others_raw, _ = token_create(user=other_user)

    user.set_password(NEW_PASSWORD)
    user.save()

    assert_all_revoked(raws)
    assert not ApiToken.objects.filter(user=user).exists()
    assert ApiClient(others_raw).get("/api/v1/me").status_code == 200


def test_saving_a_user_without_a_new_password_keeps_the_tokens(user):
    raw, _ = token_create(user=user)

    user.first_name = "Alice"
    user.save()

    assert ApiClient(raw).get("/api/v1/me").status_code == 200


def test_the_admins_password_form_revokes_every_token(django_user_model, user):
    root = django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    raw, _ = token_create(user=user)
    browser = Client()
    browser.force_login(root)

    response = browser.post(
        f"/admin/auth/user/{user.pk}/password/",
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )

    assert response.status_code == 302, response.content
    assert_all_revoked([raw])


def test_the_admins_disable_password_form_revokes_every_token(django_user_model, user):
    """The admin's "Disable password-based authentication" is a password change too."""
    root = django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    raw, _ = token_create(user=user)
    browser = Client()
    browser.force_login(root)

    # What the form's "Disable password-based authentication" button sends.
    response = browser.post(
        f"/admin/auth/user/{user.pk}/password/",
        {"usable_password": "false", "unset-password": "Disable password-based authentication"},
    )

    assert response.status_code == 302, response.content
    user.refresh_from_db()
    assert not user.has_usable_password()  # the form did what it says
    assert_all_revoked([raw])


def test_set_unusable_password_and_save_revokes_every_token(user, other_user):
    raws = [token_create(user=user)[0] for _ in range(2)]
    others_raw, _ = token_create(user=other_user)

    user.set_unusable_password()
    user.save(update_fields=["password"])

    assert_all_revoked(raws)
    assert ApiClient(others_raw).get("/api/v1/me").status_code == 200


def test_the_changepassword_command_revokes_every_token(monkeypatch, user):
    raw, _ = token_create(user=user)
    monkeypatch.setattr("getpass.getpass", lambda prompt="": NEW_PASSWORD)

    call_command("changepassword", "alice")

    assert_all_revoked([raw])


def test_a_superuser_password_reset_at_start_revokes_its_tokens(django_user_model):
    root = django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    raw, _ = token_create(user=root)

    superuser_ensure(username="root", password=NEW_PASSWORD, email="", reset_password=True)

    assert_all_revoked([raw])


def test_a_hash_upgrade_at_login_keeps_the_tokens(settings, anonymous, user):
    """Django re-hashes a password with an outdated hasher at login; that is no password change."""
    raw, _ = token_create(user=user)
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]

    login = anonymous.send(
        "POST", "/api/v1/auth/token", json={"username": "alice", "password": PASSWORD}
    )

    assert login.status_code == 201, login.content
    user.refresh_from_db()
    assert user.password.startswith("pbkdf2_sha256$")  # the upgrade did happen
    assert ApiClient(raw).get("/api/v1/me").status_code == 200


# -- Deactivating a user deletes their tokens ------------------------------------------------


def test_deactivating_a_user_deletes_their_tokens_for_good(user, other_user):
    """Reactivating the account must not bring the old tokens back."""
    raws = [token_create(user=user)[0] for _ in range(2)]
    others_raw, _ = token_create(user=other_user)

    user.is_active = False
    user.save()
    assert not ApiToken.objects.filter(user=user).exists()
    user.is_active = True
    user.save()

    assert_all_revoked(raws)
    assert ApiClient(others_raw).get("/api/v1/me").status_code == 200


def test_saving_an_inactive_user_again_leaves_new_tokens_alone(user):
    """Only the change from active to inactive ends tokens, not every save while inactive."""
    user.is_active = False
    user.save()
    _, token = token_create(user=user)

    user.first_name = "Alice"
    user.save()

    assert ApiToken.objects.filter(pk=token.pk).exists()


def test_a_save_that_touches_neither_password_nor_is_active_costs_no_query(
    django_assert_num_queries, user
):
    """Logins save last_login with update_fields: that must stay one UPDATE."""
    user.last_login = timezone.now()

    with django_assert_num_queries(1):
        user.save(update_fields=["last_login"])
