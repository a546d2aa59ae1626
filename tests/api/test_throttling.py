"""Failed logins are limited per account and address and per address, never per account alone.

The API's token endpoint and the admin's login form alike. Per account, over every address,
there is only a slowdown: a refusal there would let anyone keep an account's owner out.
"""

import re
import threading
import time
from datetime import timedelta
from ipaddress import ip_network

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
PER_ACCOUNT_AND_ADDRESS = settings.LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS
PER_ADDRESS = settings.LOGIN_FAILURES_PER_ADDRESS
PER_ACCOUNT = settings.LOGIN_FAILURES_PER_ACCOUNT
WINDOW = settings.LOGIN_FAILURE_WINDOW_SECONDS
GUESSER, OWNER = "192.0.2.1", "198.51.100.2"


_client = ApiClient()  # one for all: a new test client sets up the middleware again


def login(username: str, password: str, address: str = GUESSER, **headers):
    return _client.post(
        TOKEN_URL,
        {"username": username, "password": password},
        content_type="application/json",
        REMOTE_ADDR=address,
        headers=headers,
    )


def fail(times: int, username: str = "alice", address: str = GUESSER) -> None:
    for _ in range(times):
        json_error(login(username, "wrong password", address), 401)


def assert_throttled(response) -> int:
    body = json_error(response, 429)
    retry_after = int(response["Retry-After"])
    assert 0 < retry_after <= WINDOW
    assert f"{retry_after} seconds" in body["detail"]
    return retry_after


def test_limits_are_a_handful():
    assert 3 <= PER_ACCOUNT_AND_ADDRESS <= 10
    assert PER_ACCOUNT_AND_ADDRESS < PER_ADDRESS <= 50
    assert PER_ACCOUNT_AND_ADDRESS < PER_ACCOUNT
    assert 0 < settings.LOGIN_SLOWDOWN_SECONDS <= 2


# -- Per account and address -------------------------------------------------------------------


def test_an_address_is_refused_an_account_after_repeated_failures_even_with_the_right_password(
    user,
):
    fail(PER_ACCOUNT_AND_ADDRESS)

    retry_after = assert_throttled(login("alice", PASSWORD))

    assert retry_after > WINDOW - 60
    assert_throttled(login("alice", "wrong password"))


def test_other_accounts_still_log_in_from_that_address(user, other_user):
    fail(PER_ACCOUNT_AND_ADDRESS, "alice")

    assert login("bob", PASSWORD).status_code == 201


def test_an_unknown_username_is_throttled_exactly_like_a_real_one(user):
    limit = PER_ACCOUNT_AND_ADDRESS
    real = [login("alice", "wrong", "192.0.2.1").status_code for _ in range(limit + 1)]
    unknown = [login("nobody", "wrong", "192.0.2.2").status_code for _ in range(limit + 1)]

    assert real == unknown == [401] * limit + [429]


def test_a_success_clears_the_failures_of_its_account_and_address(user):
    fail(PER_ACCOUNT_AND_ADDRESS - 1)
    assert login("alice", PASSWORD).status_code == 201

    fail(PER_ACCOUNT_AND_ADDRESS - 1)

    assert login("alice", PASSWORD).status_code == 201


def test_successful_logins_are_never_throttled(user):
    for _ in range(PER_ADDRESS + 1):
        assert login("alice", PASSWORD).status_code == 201
    assert not LoginFailure.objects.exists()


def test_a_throttled_attempt_is_not_counted_as_another_failure(user):
    fail(PER_ACCOUNT_AND_ADDRESS)
    for _ in range(3):
        assert_throttled(login("alice", PASSWORD))

    assert LoginFailure.objects.count() == PER_ACCOUNT_AND_ADDRESS


def test_failures_older_than_the_window_no_longer_count(user):
    fail(PER_ACCOUNT_AND_ADDRESS)
    LoginFailure.objects.update(at=timezone.now() - timedelta(seconds=WINDOW + 1))

    assert login("alice", PASSWORD).status_code == 201


def test_retry_after_is_when_the_oldest_counted_failure_leaves_the_window(user):
    fail(PER_ACCOUNT_AND_ADDRESS)
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
    assert stored.address == GUESSER


# -- Nobody can lock an account out ------------------------------------------------------------


def test_failures_from_one_address_do_not_keep_the_owner_out_from_another(user):
    fail(PER_ACCOUNT_AND_ADDRESS, address=GUESSER)

    assert login("alice", PASSWORD, address=OWNER).status_code == 201
    assert_throttled(login("alice", PASSWORD, address=GUESSER))  # the guesser stays refused


def test_failures_from_many_addresses_only_slow_the_account_down(settings, user):
    settings.LOGIN_SLOWDOWN_SECONDS = 0.3
    enough = -(-PER_ACCOUNT // PER_ACCOUNT_AND_ADDRESS)  # addresses, each up to its limit
    guessers = [f"203.0.113.{number + 1}" for number in range(enough)]
    for address in guessers:
        fail(PER_ACCOUNT_AND_ADDRESS, address=address)
    assert LoginFailure.objects.count() >= PER_ACCOUNT

    started = time.monotonic()
    response = login("alice", PASSWORD, address=OWNER)

    assert response.status_code == 201
    assert time.monotonic() - started >= 0.3
    for address in guessers:
        assert_throttled(login("alice", PASSWORD, address=address))


def test_below_the_accounts_count_logins_are_not_slowed(settings, user):
    settings.LOGIN_SLOWDOWN_SECONDS = 2
    fail(PER_ACCOUNT_AND_ADDRESS, address=GUESSER)
    fail(PER_ACCOUNT - 1 - PER_ACCOUNT_AND_ADDRESS, address="203.0.113.7")

    started = time.monotonic()
    assert login("alice", PASSWORD, address=OWNER).status_code == 201
    assert time.monotonic() - started < 2


def test_the_owners_login_does_not_give_a_guesser_a_fresh_allowance(user):
    fail(PER_ACCOUNT_AND_ADDRESS - 1, address=GUESSER)
    assert login("alice", PASSWORD, address=OWNER).status_code == 201

    fail(1, address=GUESSER)

    assert_throttled(login("alice", "another guess", address=GUESSER))


# -- Per address ---------------------------------------------------------------------------------


def test_an_address_is_throttled_after_failures_across_many_accounts(user):
    for number in range(PER_ADDRESS):
        fail(1, username=f"guess{number}", address="203.0.113.5")

    assert_throttled(login("alice", PASSWORD, address="203.0.113.5"))
    assert login("alice", PASSWORD, address="203.0.113.6").status_code == 201


def test_an_ipv6_client_is_counted_by_its_64_not_by_each_address(user):
    for number in range(PER_ACCOUNT_AND_ADDRESS):
        fail(1, address=f"2001:db8:1:2::{number + 1:x}")

    assert_throttled(login("alice", PASSWORD, address="2001:db8:1:2:ffff::1"))
    assert login("alice", PASSWORD, address="2001:db8:1:3::1").status_code == 201


# -- Client addresses behind a proxy ------------------------------------------------------------


def test_an_untrusted_peer_cannot_dodge_the_limit_by_rotating_x_forwarded_for(settings, user):
    settings.TRUSTED_PROXIES = [ip_network("10.0.0.0/8")]
    for number in range(PER_ADDRESS):  # one guess per account: only the address limit applies
        forged = f"198.51.100.{number}"
        response = login(f"guess{number}", "wrong", "203.0.113.5", x_forwarded_for=forged)
        json_error(response, 401)

    assert_throttled(login("alice", PASSWORD, "203.0.113.5", x_forwarded_for="198.51.100.99"))
    assert set(LoginFailure.objects.values_list("address", flat=True)) == {"203.0.113.5"}


def test_an_unparsable_x_forwarded_for_counts_as_the_proxy_itself(settings, user):
    settings.TRUSTED_PROXIES = [ip_network("10.0.0.0/8")]
    junk = ["", "unknown", "1.2.3", "::g", "203.0.113.5, nonsense", "203.0.113.5,"]
    for number in range(PER_ACCOUNT_AND_ADDRESS):
        header = junk[number % len(junk)]
        json_error(login("alice", "wrong", "10.9.9.9", x_forwarded_for=header), 401)

    assert set(LoginFailure.objects.values_list("address", flat=True)) == {"10.9.9.9"}
    assert_throttled(login("alice", PASSWORD, "10.9.9.9", x_forwarded_for="nonsense"))


def test_behind_a_trusted_proxy_each_client_is_counted_by_the_address_the_proxy_added(
    settings, user
):
    settings.TRUSTED_PROXIES = [ip_network("10.0.0.0/8")]
    for number in range(PER_ACCOUNT_AND_ADDRESS):
        # The client forges the left part; the proxy (the peer) appends the real address.
        forged = f"192.0.2.{number}, 10.0.0.{number}"
        response = login("alice", "wrong", "10.9.9.9", x_forwarded_for=f"{forged}, 203.0.113.5")
        json_error(response, 401)

    assert_throttled(login("alice", PASSWORD, "10.9.9.9", x_forwarded_for="1.2.3.4, 203.0.113.5"))
    assert login("alice", PASSWORD, "10.9.9.9", x_forwarded_for="203.0.113.6").status_code == 201


def test_without_trusted_proxies_x_forwarded_for_is_ignored(settings, user):
    settings.TRUSTED_PROXIES = []
    for number in range(PER_ACCOUNT_AND_ADDRESS):
        response = login("alice", "wrong", "10.9.9.9", x_forwarded_for=f"203.0.113.{number}")
        json_error(response, 401)

    assert_throttled(login("alice", PASSWORD, "10.9.9.9", x_forwarded_for="203.0.113.99"))


# -- The admin's login form ----------------------------------------------------------------------


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)


def admin_login(browser: Client, password: str, address: str = GUESSER):
    form = browser.get("/admin/login/?next=/admin/")
    csrf = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', form.content).group(1)
    return browser.post(
        "/admin/login/?next=/admin/",
        {"username": "root", "password": password, "csrfmiddlewaretoken": csrf.decode()},
        REMOTE_ADDR=address,
    )


def test_the_admin_login_is_throttled_with_429_and_retry_after(superuser):
    browser = Client(enforce_csrf_checks=True)
    for _ in range(PER_ACCOUNT_AND_ADDRESS):
        assert b"Please enter the correct" in admin_login(browser, "wrong").content

    response = admin_login(browser, PASSWORD)

    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= WINDOW
    assert response["Content-Type"].startswith("text/html")
    assert b"Too many failed logins" in response.content
    assert browser.get("/admin/").status_code == 302  # not logged in


def test_failures_at_the_admin_from_one_address_do_not_keep_the_admin_out_from_another(superuser):
    guesser = Client(enforce_csrf_checks=True)
    for _ in range(PER_ACCOUNT_AND_ADDRESS):
        admin_login(guesser, "wrong", address=GUESSER)
    fail(PER_ACCOUNT_AND_ADDRESS, username="root", address="203.0.113.5")  # and the API's

    owner = Client(enforce_csrf_checks=True)
    response = admin_login(owner, PASSWORD, address=OWNER)

    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert owner.get("/admin/").status_code == 200
    assert login("root", PASSWORD, address=OWNER).status_code == 201


def test_the_admin_and_the_api_share_a_count(superuser):
    browser = Client(enforce_csrf_checks=True)
    for _ in range(PER_ACCOUNT_AND_ADDRESS):
        admin_login(browser, "wrong", address=GUESSER)

    assert_throttled(login("root", PASSWORD, address=GUESSER))


# -- Many processes at once ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_parallel_guesses_get_exactly_the_limit_checked(monkeypatch, django_user_model):
    """Attempts are counted before the password check, one address at a time: a burst of 40
    guesses gets exactly the limit checked, the rest refused."""
    django_user_model.objects.create_user("alice", password=PASSWORD)
    check_password = ModelBackend.authenticate

    def slow_check(self, *args, **kwargs):
        time.sleep(0.3)  # a real password hash takes this long; every guess is now in flight
        return check_password(self, *args, **kwargs)

    monkeypatch.setattr(ModelBackend, "authenticate", slow_check)
    request = RequestFactory().post(TOKEN_URL, REMOTE_ADDR=GUESSER)
    guesses = 40
    start, outcomes = threading.Barrier(guesses), []

    def guess():
        start.wait()
        try:
            assert token_login(username="alice", password="wrong", request=request) is None
            outcomes.append(401)
        except LoginThrottled:
            outcomes.append(429)
        finally:
            connection.close()

    threads = [threading.Thread(target=guess) for _ in range(guesses)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == [401] * PER_ACCOUNT_AND_ADDRESS + [429] * (
        guesses - PER_ACCOUNT_AND_ADDRESS
    )
    assert LoginFailure.objects.count() == PER_ACCOUNT_AND_ADDRESS
