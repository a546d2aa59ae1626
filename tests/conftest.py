from pathlib import Path

import pytest

from accounts.services import token_create
from tests.support.api import PASSWORD, ApiClient


@pytest.fixture
def make_user(django_user_model):
    def make(username: str, **fields):
        return django_user_model.objects.create_user(username=username, password=PASSWORD, **fields)

    return make


@pytest.fixture
def user(make_user):
    return make_user("alice")


@pytest.fixture
def other_user(make_user):
    return make_user("bob")


@pytest.fixture
def anonymous():
    return ApiClient()


@pytest.fixture
def client_for():
    def make(user):
        raw, _ = token_create(user=user)
        return ApiClient(raw)

    return make


@pytest.fixture
def api(client_for, user):
    return client_for(user)


# Each folder holds one kind of test, marked by its name; `-m fast` runs the kinds that need no
# server processes, browser or containers (seconds, not minutes).
KINDS = {"unit", "api", "system", "deploy", "browser", "containers"}
FAST_KINDS = {"unit", "api", "deploy"}


def pytest_collection_modifyitems(items):
    for item in items:
        kind = Path(item.path).relative_to(Path(__file__).parent).parts[0]
        if kind in KINDS:
            item.add_marker(kind)
            if kind in FAST_KINDS:
                item.add_marker("fast")
