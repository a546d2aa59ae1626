from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from core.prepared_query import PreparedQuery
from core.replicas import routing
from observability import events

from .models import ApiToken, hash_token, new_raw_token


def token_create(*, user: User) -> tuple[str, ApiToken]:
    """A new bearer token for `user`: the raw value (shown once) and its stored record."""
    raw = new_raw_token()
    token = ApiToken.objects.create(
        user=user,
        key_hash=hash_token(raw),
        expires=timezone.now() + timedelta(seconds=settings.API_TOKEN_LIFETIME_SECONDS),
    )
    events.tokens_issued()
    return raw, token


def token_login(
    *, username: str, password: str, request: HttpRequest | None = None
) -> tuple[str, ApiToken] | None:
    """A token for valid, active credentials; None otherwise (never says which part was wrong).

    Raises accounts.throttle.LoginThrottled after repeated failures for the account or from the
    request's address.
    """
    user = authenticate(request, username=username, password=password)
    if user is None or not user.is_active:
        return None
    # The password was checked against the row as authenticate() read it. A change saved since
    # (a new password, one made unusable, a deactivation) revoked only the tokens that existed
    # then, not this one. So the token is issued only while the row is still as checked, and
    # the row stays locked until the token is in: a change saved meanwhile waits for this
    # commit, and then revokes this token with the others.
    with transaction.atomic():
        if not _credentials_unchanged(user):
            return None
        return token_create(user=user)


def _credentials_unchanged(user: User) -> bool:
    """The user's row, locked, still has the password hash just checked and is active.

    FOR NO KEY UPDATE conflicts with the UPDATE of a save; it also makes two logins of one user
    take turns for the length of one INSERT, which costs nothing worth measuring.
    """
    return (
        type(user)
        ._base_manager.select_for_update(no_key=True)
        .filter(pk=user.pk, password=user.password, is_active=True)
        .exists()
    )


def _attnames(model) -> list[str]:
    return [field.attname for field in model._meta.concrete_fields]


# Every request runs this: compiled once per process (core/prepared_query.py), one indexed query.
_TOKEN_USER = PreparedQuery(
    lambda key_hash, now: (
        ApiToken.objects.filter(key_hash=key_hash, expires__gt=now, user__is_active=True)
        .order_by()
        .values_list(
            *_attnames(ApiToken),
            *(f"user__{name}" for name in _attnames(get_user_model())),
        )[:1]
    ),
    key_hash="\x00key_hash",
    now=datetime(1111, 11, 11, 11, 11, 11, 111111, tzinfo=UTC),
)


def token_user(*, raw: str) -> tuple[User, ApiToken] | None:
    """The active user behind a live token, in one indexed query, on the primary.

    Never on a replica, even for a GET: a replica may be up to REPLICA_MAX_LAG_SECONDS behind,
    and a token revoked (or a user deactivated) must stop working at once. `routing(None)` is
    the router's "no replica" for this one query; the rest of the request reads where it did.
    """
    with routing(None):
        using, rows = _TOKEN_USER.fetch(key_hash=hash_token(raw), now=timezone.now())
    if not rows:
        return None
    token_columns = _attnames(ApiToken)
    split = len(token_columns)
    token = ApiToken.from_db(using, token_columns, rows[0][:split])
    user = get_user_model().from_db(using, _attnames(get_user_model()), rows[0][split:])
    token.user = user
    return user, token


def token_revoke(*, token: ApiToken) -> None:
    token.delete()
    events.tokens_revoked()


def superuser_ensure(*, username: str, password: str, email: str, reset_password: bool) -> str:
    """Create the superuser once; change its password only when asked. Says what it did.

    Never invents a password: without one, nothing is created.
    """
    UserModel = get_user_model()
    user = UserModel.objects.filter(username=username).first()
    if user is None:
        if not password:
            return f"superuser {username!r} not created: DJANGO_SUPERUSER_PASSWORD is not set"
        user = UserModel(username=username, email=email, is_staff=True, is_superuser=True)
        validate_password(password, user)
        user.set_password(password)
        user.save()
        return f"superuser {username!r} created"
    if reset_password and password:
        validate_password(password, user)
        user.set_password(password)
        user.save(update_fields=["password"])
        return f"superuser {username!r} exists; password updated"
    return f"superuser {username!r} exists"
