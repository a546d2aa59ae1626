import pytest
from django.test import Client

from accounts.services import token_create

PASSWORD = "correct horse battery staple"


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


class ApiClient(Client):
    """Django's test client speaking JSON, with an optional bearer token."""

    def __init__(self, token: str | None = None):
        super().__init__(headers={"Authorization": f"Bearer {token}"} if token else None)

    def send(self, method: str, path: str, json=None, **kwargs):
        if json is not None:
            kwargs.setdefault("content_type", "application/json")
            kwargs["data"] = json
        return getattr(self, method.lower())(path, **kwargs)


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
