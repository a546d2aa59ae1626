from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend

from core.client_address import client_address

from . import throttle


class ThrottledModelBackend(ModelBackend):
    """Django's username and password check, behind the failed-login limits of accounts.throttle.

    Every password login goes through `authenticate()` and so through here: the API's token
    endpoint and the admin's login form alike. LoginThrottled is not PermissionDenied on purpose:
    it leaves `authenticate()` and the login form, and becomes a 429 (config/api.py for the API,
    accounts.middleware for the admin).
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        if username is None or password is None:
            return None
        username = str(username)
        address = client_address(request)
        throttle.login_attempt_begin(username=username, address=address)
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None:
            throttle.login_succeeded(username=username, address=address)
        return user
