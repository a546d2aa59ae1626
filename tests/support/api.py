"""Django's test client speaking JSON, and the password every test user has."""

from django.test import Client

PASSWORD = "correct horse battery staple"


class ApiClient(Client):
    """Django's test client speaking JSON, with an optional bearer token."""

    def __init__(self, token: str | None = None):
        super().__init__(headers={"Authorization": f"Bearer {token}"} if token else None)

    def send(self, method: str, path: str, json=None, **kwargs):
        if json is not None:
            kwargs.setdefault("content_type", "application/json")
            kwargs["data"] = json
        return getattr(self, method.lower())(path, **kwargs)
