"""The security and idempotency counters move when their events happen, and only then."""

import pytest
from prometheus_client import REGISTRY

from tests.support.api import PASSWORD

pytestmark = pytest.mark.django_db


def count(name: str) -> float:
    return REGISTRY.get_sample_value(f"keepnotes_{name}_total") or 0.0


class Counts:
    """The change of every event counter since this was made."""

    NAMES = (
        "logins_failed",
        "logins_throttled",
        "tokens_issued",
        "tokens_revoked",
        "idempotency_replays",
        "idempotency_conflicts",
    )

    def __init__(self):
        self.before = {name: count(name) for name in self.NAMES}

    def changes(self) -> dict[str, float]:
        changed = {name: count(name) - self.before[name] for name in self.NAMES}
        return {name: delta for name, delta in changed.items() if delta}


def login(anonymous, user, password):
    return anonymous.send(
        "POST", "/api/v1/auth/token", {"username": user.username, "password": password}
    )


def test_failed_and_throttled_logins_are_counted(anonymous, user, settings):
    settings.LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS = 2
    counts = Counts()
    assert login(anonymous, user, "wrong").status_code == 401
    assert login(anonymous, user, "wrong").status_code == 401
    assert login(anonymous, user, "wrong").status_code == 429
    assert counts.changes() == {"logins_failed": 2, "logins_throttled": 1}


def test_a_good_login_issues_a_token_and_nothing_else(anonymous, user):
    counts = Counts()
    assert login(anonymous, user, PASSWORD).status_code == 201
    assert counts.changes() == {"tokens_issued": 1}


def test_a_new_password_revokes_every_token(user, client_for):
    client_for(user), client_for(user)
    counts = Counts()
    user.set_password("another long passphrase")
    user.save()
    assert counts.changes() == {"tokens_revoked": 2}


def test_replays_and_key_conflicts_are_counted(api):
    counts = Counts()
    note = {"title": "t", "body": "b"}
    headers = {"Idempotency-Key": "k-1"}
    assert api.send("POST", "/api/v1/notes", note, headers=headers).status_code == 201
    assert counts.changes() == {}, "a first write is neither"
    assert api.send("POST", "/api/v1/notes", note, headers=headers).status_code == 201
    other = {"title": "t", "body": "other"}
    assert api.send("POST", "/api/v1/notes", other, headers=headers).status_code == 422
    assert counts.changes() == {"idempotency_replays": 1, "idempotency_conflicts": 1}


def test_revoking_a_token_is_counted(api):
    counts = Counts()
    assert api.send("DELETE", "/api/v1/auth/token").status_code == 204
    assert counts.changes() == {"tokens_revoked": 1}
