"""A login in flight while its user's credentials change never ends with a working token.

A change revokes the tokens that exist when it is saved; a login that checked the old password
just before, and issues its token just after, must not slip past that. Each test makes the
login stop at a chosen point (a hook around accounts.services' own calls, released by an event)
and orders the two sides exactly, on a real PostgreSQL: no sleeps decide who goes first.
"""

import threading
import time
from collections.abc import Callable

import pytest
from django.db import connection

from accounts import services
from accounts.models import ApiToken
from accounts.services import token_login, token_user
from tests.support.api import PASSWORD

# The login under test runs in its own thread, so on its own connection: the data it reads
# must be committed, as in production.
pytestmark = pytest.mark.django_db(transaction=True)

WAIT_SECONDS = 30  # only ever reached when something is broken


def new_password(user) -> None:
    user.set_password("another long passphrase, never used")


def password_disabled(user) -> None:
    user.set_unusable_password()  # the admin's "Disable password-based authentication"


def deactivated(user) -> None:
    user.is_active = False


CHANGES = [new_password, password_disabled, deactivated]


class PausedLogin:
    """token_login for alice in a thread, stopped just after `step` (a name in accounts.services)
    until `resume()`."""

    def __init__(self, monkeypatch, step: str):
        self.reached, self.released = threading.Event(), threading.Event()
        self.outcome: list = []
        real = getattr(services, step)

        def step_then_pause(*args, **kwargs):
            result = real(*args, **kwargs)
            self.reached.set()
            assert self.released.wait(WAIT_SECONDS)
            return result

        monkeypatch.setattr(services, step, step_then_pause)
        self.thread = threading.Thread(target=self._login)
        self.thread.start()
        assert self.reached.wait(WAIT_SECONDS), "the login never reached its pause"

    def _login(self) -> None:
        try:
            self.outcome.append(token_login(username="alice", password=PASSWORD))
        finally:
            connection.close()

    def resume(self) -> tuple[str, ApiToken] | None:
        self.released.set()
        self.thread.join(WAIT_SECONDS)
        assert self.outcome, "the login failed (its exception is printed above)"
        return self.outcome[0]


@pytest.mark.parametrize("change", CHANGES)
def test_a_change_saved_between_the_password_check_and_the_token_refuses_the_login(
    monkeypatch, user, change: Callable
):
    login = PausedLogin(monkeypatch, "authenticate")  # the old password has been checked

    change(user)
    user.save()
    issued = login.resume()

    assert issued is None
    assert not ApiToken.objects.filter(user=user).exists()


@pytest.mark.parametrize("change", CHANGES)
def test_a_change_saved_while_the_token_is_being_issued_waits_and_then_revokes_it(
    monkeypatch, user, change: Callable
):
    login = PausedLogin(monkeypatch, "_credentials_unchanged")  # re-checked, token not yet in
    saver_pid, saved = [], threading.Event()

    def save() -> None:
        try:
            connection.ensure_connection()
            saver_pid.append(connection.connection.info.backend_pid)
            change(user)
            user.save()
            saved.set()
        finally:
            connection.close()

    saver = threading.Thread(target=save)
    saver.start()
    wait_until_waiting_on_a_lock(saver_pid)
    assert not saved.is_set()
    issued = login.resume()
    saver.join(WAIT_SECONDS)

    assert saved.is_set()
    assert issued is not None, "checked before the change: the login itself succeeds"
    assert token_user(raw=issued[0]) is None, "but the change revoked its token"


def wait_until_waiting_on_a_lock(pid: list[int]) -> None:
    """Until the saving connection is blocked on a row lock (polling a state, not guessing)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        if pid:
            with connection.cursor() as cursor:
                cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", pid)
                row = cursor.fetchone()
            if row and row[0] == "Lock":
                return
        assert time.monotonic() < deadline, "the save never waited for the login's lock"
        time.sleep(0.01)
