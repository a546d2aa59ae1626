from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.utils import timezone

from core.replicas import routing

from .models import ApiToken


def user_may_list_users(*, user: User) -> bool:
    """Staff with the auth.view_user permission, as the admin asks; superusers have it.

    Read from the primary, like the token check: a permission taken away acts at once.
    """
    with routing(None):
        return user.is_staff and user.has_perm("auth.view_user")


def user_list(*, limit: int, after_id: int = 0) -> tuple[list, str | None]:
    """Users by id, one page at a time; the cursor is the last id seen."""
    users = list(get_user_model().objects.filter(pk__gt=after_id).order_by("pk")[: limit + 1])
    has_more = len(users) > limit
    users = users[:limit]
    return users, str(users[-1].pk) if has_more else None


def token_list(
    *, user: User, limit: int, before_id: int | None = None
) -> tuple[list[ApiToken], str | None]:
    """The user's live tokens, newest first; the cursor is the last id seen."""
    tokens = ApiToken.objects.filter(user=user, expires__gt=timezone.now())
    if before_id is not None:
        tokens = tokens.filter(pk__lt=before_id)
    page = list(tokens.order_by("-pk")[: limit + 1])
    has_more = len(page) > limit
    page = page[:limit]
    return page, str(page[-1].pk) if has_more else None


def token_get(*, user: User, token_id: int) -> ApiToken | None:
    """One of the user's tokens; another user's is None, exactly like a missing one."""
    return ApiToken.objects.filter(user=user, pk=token_id).first()
