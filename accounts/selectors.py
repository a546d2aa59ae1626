from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.utils import timezone

from core.pagination import Page, keyset_page
from core.replicas import routing

from .models import ApiToken


def user_may_list_users(*, user: User) -> bool:
    """Staff with the auth.view_user permission, as the admin asks; superusers have it.

    Read from the primary, like the token check: a permission taken away acts at once.
    """
    with routing(None):
        return user.is_staff and user.has_perm("auth.view_user")


def user_list(*, limit: int, cursor: str | None = None) -> Page:
    """Users by id, one page at a time."""
    users = get_user_model().objects.all()
    return keyset_page(users, order=("pk",), limit=limit, cursor=cursor)


def token_list(*, user: User, limit: int, cursor: str | None = None) -> Page[ApiToken]:
    """The user's live tokens, newest first."""
    tokens = ApiToken.objects.filter(user=user, expires__gt=timezone.now())
    return keyset_page(tokens, order=("-pk",), limit=limit, cursor=cursor)


def token_get(*, user: User, token_id: int) -> ApiToken | None:
    """One of the user's tokens; another user's is None, exactly like a missing one."""
    return ApiToken.objects.filter(user=user, pk=token_id).first()
