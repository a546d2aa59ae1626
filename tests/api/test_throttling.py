"""Failed logins are throttled per account and per client address: the API and the admin."""

import re
import threading
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.db import connection
from django.test import Client, RequestFactory
from django.utils import timezone

from accounts.models import LoginFailure
from accounts.services import token_login
from accounts.throttle import LoginThrottled
from tests.support.api import PASSWORD, ApiClient
from tests.support.errors import json_error

pytestmark = pytest.mark.django_db

TOKEN_URL = "/api/v1/auth/token"
PER_ACCOUNT = settings.LOGIN_FAILURES_PER_ACCOUNT
PER_ADDRESS = settings.LOGIN_FAILURES_PER_ADDRESS
WINDOW = settings.LOGIN_FAILURE_WINDOW_SECONDS


_client = ApiClient()  # one for all: a new test client sets up the middleware again


def login(username: str, password: str, address: str = "192.0.2.1", **headers):
    return _client.post(
        TOKEN_URL,
        {"username": username, "password": password},
        content_type="application/json",
        REMOTE_ADDR=address,
        headers=headers,
    )


def fail(times: int, username: str = "alice", address: str = "192.0.2.1") -> None:
    for _ in range(times):
        json_error(login(username, "wrong password", address), 401)


def assert_throttled(response) -> int:
    body = json_error(response, 429)
    retry_after = int(response["Retry-After"])
    assert 0 < retry_after <= WINDOW
    assert f"{retry_after} seconds" in body["detail"]
    return retry_after


def test_limits_are_a_handful():
    assert 3 <= PER_ACCOUNT <= 10
    assert PER_ACCOUNT < PER_ADDRESS <= 50


# -- Per account --------------------------------------------------------------------------------


def test_an_account_is_throttled_after_repeated_failures_even_with_the_right_password(user):
    fail(PER_ACCOUNT)

    retry_after = assert_throttled(login("alice", PASSWORD))

    assert retry_after > WINDOW - 60
    assert_throttled(login("alice", "wrong password"))


def test_throttling_is_per_account(user, other_user):
    fail(PER_ACCOUNT, "alice")

    assert login("bob", PASSWORD, address="198.51.100.7").status_code == 201


def test_throttling_is_per_account_from_any_address(user):
    for number in range(PER_ACCOUNT):
        fail(1, address=f"198.51.100.{number + 1}")

    assert_throttled(login("alice", PASSWORD, address="203.0.113.99"))


def test_an_unknown_username_is_throttled_exactly_like_a_real_one(user):
    real = [login("alice", "wrong", "192.0.2.1").status_code for _ in range(PER_ACCOUNT + 1)]
    unknown = [login("nobody", "wrong", "192.0.2.2").status_code for _ in range(PER_ACCOUNT + 1)]

    assert real == unknown == [401] * PER_ACCOUNT + [429]


def test_a_success_clears_the_accounts_failures(user):
    fail(PER_ACCOUNT - 1)
    assert login("alice", PASSWORD).status_code == 201

    fail(PER_ACCOUNT - 1)

    assert login("alice", PASSWORD).status_code == 201


def test_successful_logins_are_never_throttled(user):
    for _ in range(PER_ADDRESS + 1):
        assert login("alice", PASSWORD).status_code == 201
    assert not LoginFailure.objects.exists()


def test_a_throttled_attempt_is_not_counted_as_another_failure(user):
    fail(PER_ACCOUNT)
    for _ in range(3):
        assert_throttled(login("alice", PASSWORD))

    assert LoginFailure.objects.count() == PER_ACCOUNT


def test_failures_older_than_the_window_no_longer_count(user):
    fail(PER_ACCOUNT)
    LoginFailure.objects.update(at=timezone.now() - timedelta(seconds=WINDOW + 1))

    assert login("alice", PASSWORD).status_code == 201


def test_retry_after_is_when_the_oldest_counted_failure_leaves_the_window(user):
    fail(PER_ACCOUNT)
    oldest = LoginFailure.objects.order_by("at").first()
    LoginFailure.objects.filter(pk=oldest.pk).update(
        at=timezone.now() - timedelta(seconds=WINDOW - 30)
    )

    assert 1 <= assert_throttled(login("alice", PASSWORD)) <= 31


def test_only_a_digest_of_the_username_is_stored(user):
    fail(1, username="my password typed in the wrong box")

    stored = LoginFailure.objects.get()
    assert "password" not in stored.username_hash
    assert re.fullmatch(r"[0-9a-f]{64}", stored.username_hash)
    assert stored.address == "192.0.2.1"


# -- Per address --------------------------------------------------------------------------------


def test_an_address_is_throttled_after_failures_across_many_accounts(user):
    for number in range(PER_ADDRESS):
        fail(1, username=f"guess{number}", address="203.0.113.5")

    assert_throttled(login("alice", PASSWORD, address="203.0.113.5"))
    assert login("alice", PASSWORD, address="203.0.113.6").status_code == 201


def test_behind_a_proxy_the_address_is_the_one_the_proxy_added(settings, user):
    settings.TRUSTED_PROXY_HOPS = 1
    for number in range(PER_ADDRESS):
        # The client forges the left part; the proxy (the peer) appends the real address.
        forged = f"10.0.0.{number}"
        response = login(
            f"guess{number}", "wrong", address="10.9.9.9", x_forwarded_for=f"{forged}, 203.0.113.5"
        )
        json_error(response, 401)

    assert_throttled(login("alice", PASSWORD, "10.9.9.9", x_forwarded_for="1.2.3.4, 203.0.113.5"))
    assert login("alice", PASSWORD, "10.9.9.9", x_forwarded_for="203.0.113.6").status_code == 201


def test_without_a_proxy_x_forwarded_for_is_ignored(settings, user):
    settings.TRUSTED_PROXY_HOPS = 0
    for number in range(PER_ADDRESS):
        fail_with_header = login(
            f"guess{number}", "wrong", "203.0.113.5", x_forwarded_for=f"10.0.0.{number}"
        )
        json_error(fail_with_header, 401)

    assert_throttled(login("alice", PASSWORD, "203.0.113.5", x_forwarded_for="10.1.1.1"))


# -- The admin's login form ----------------------------------------------------------------------


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)


def admin_login(browser: Client, password: str):
    form = browser.get("/admin/login/?next=/admin/")
    csrf = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', form.content).group(1)
    return browser.post(
        "/admin/login/?next=/admin/",
        {"username": "root", "password": password, "csrfmiddlewaretoken": csrf.decode()},
        REMOTE_ADDR="192.0.2.50",
    )


def test_the_admin_login_is_throttled_with_429_and_retry_after(superuser):
    browser = Client(enforce_csrf_checks=True)
    for _ in range(PER_ACCOUNT):
        assert b"Please enter the correct" in admin_login(browser, "wrong").content

    response = admin_login(browser, PASSWORD)

    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= WINDOW
    assert response["Content-Type"].startswith("text/html")
    assert b"Too many failed logins" in response.content
    assert browser.get("/admin/").status_code == 302  # not logged in


def test_the_admin_and_the_api_share_an_accounts_count(superuser):
    browser = Client(enforce_csrf_checks=True)
    for _ in range(PER_ACCOUNT):
        admin_login(browser, "wrong")

    assert_throttled(login("root", PASSWORD, address="198.51.100.1"))


# -- Many processes at once ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_parallel_guesses_cannot_slip_past_the_limit(monkeypatch, django_user_model):
    """Attempts are counted before the password check, so a burst gets no more than the limit."""
    django_user_model.objects.create_user("alice", password=PASSWORD)
    check_password = ModelBackend.authenticate

    def slow_check(self, *args, **kwargs):
        time.sleep(0.3)  # a real password hash takes this long; every guess is now in flight
        return check_password(self, *args, **kwargs)

    monkeypatch.setattr(ModelBackend, "authenticate", slow_check)
    request = RequestFactory().post(TOKEN_URL, REMOTE_ADDR="192.0.2.1")
    guesses = 3 * PER_ACCOUNT
    start, outcomes = threading.Barrier(guesses), []

    def guess():
        start.wait()
        try:
            token_login(username="alice", password="wrong", request=request)
            outcomes.append("checked")
        except LoginThrottled:
            outcomes.append("throttled")
        finally:
            connection.close()

    threads = [threading.Thread(target=guess) for _ in range(guesses)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(outcomes) == guesses
    # Guesses that overlap may all be refused; never may more than the limit be checked.
    assert outcomes.count("checked") <= PER_ACCOUNT
