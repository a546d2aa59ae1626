"""`manage.py unlock USER`: an operator forgets an account's failed logins."""

from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import RequestFactory

from accounts.models import LoginFailure, hash_username
from accounts.services import token_login
from accounts.throttle import LoginThrottled
from tests.support.api import PASSWORD

pytestmark = pytest.mark.django_db

LIMIT = settings.LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS


def log_in(username: str, password: str, address: str = "192.0.2.1"):
    request = RequestFactory().post("/api/v1/auth/token", REMOTE_ADDR=address)
    return token_login(username=username, password=password, request=request)


def unlock(username: str) -> str:
    out = StringIO()
    call_command("unlock", username, stdout=out)
    return out.getvalue().strip()


def test_unlock_forgets_the_accounts_failures_from_every_address(user, other_user):
    for number in range(LIMIT):
        assert log_in("alice", "wrong") is None
        assert log_in("alice", "wrong", address=f"198.51.100.{number}") is None
    assert log_in("bob", "wrong") is None
    with pytest.raises(LoginThrottled):
        log_in("alice", PASSWORD)

    assert unlock("alice") == f"Cleared {2 * LIMIT} failed logins of alice."

    assert log_in("alice", PASSWORD) is not None
    assert list(LoginFailure.objects.values_list("username_hash", flat=True)) == [
        hash_username("bob")
    ]


def test_unlocking_an_account_without_failures_says_so(user):
    assert unlock("alice") == "Cleared 0 failed logins of alice."


def test_an_unknown_user_is_an_error():
    with pytest.raises(CommandError, match="No user 'nobody'"):
        unlock("nobody")
