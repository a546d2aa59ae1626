from typing import Annotated

from django.http import Http404
from ninja import Path, Query, Router, Status
from ninja.errors import HttpError
from ninja.security import HttpBearer

from core.fields import MAX_BIGINT
from core.pagination import Cursor
from core.schemas import ErrorOut

from . import selectors, services
from .schemas import TokenIn, TokenOut, TokenPageOut, UserOut, UserPageOut

Id = Annotated[int, Path(ge=1, le=MAX_BIGINT)]


class BearerToken(HttpBearer):
    """`Authorization: Bearer <token>`; request.auth is the token record, with its user."""

    def authenticate(self, request, token: str):
        found = services.token_user(raw=token)
        if found is None:
            return None
        user, record = found
        request.user = user
        return record


auth_router = Router(tags=["auth"])
me_router = Router(tags=["users"])


@auth_router.post("/token", response={201: TokenOut, 401: ErrorOut, 429: ErrorOut}, auth=None)
def create_token(request, payload: TokenIn):
    """Exchange a username and password for a bearer token.

    After repeated failures for an account or from an address, logins are refused with 429 and
    a `Retry-After` header, whether or not the password is right.
    """
    issued = services.token_login(
        username=payload.username, password=payload.password, request=request
    )
    if issued is None:
        raise HttpError(401, "Invalid username or password.")
    raw, token = issued
    return Status(201, {"token": raw, "expires": token.expires})


@auth_router.delete("/token", response={204: None})
def revoke_token(request):
    """Revoke the token this request was made with (log out)."""
    services.token_revoke(token=request.auth)
    return Status(204, None)


@auth_router.get("/tokens", response=TokenPageOut)
def list_tokens(
    request,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Cursor = None,
):
    """The caller's live tokens, newest first; never their values."""
    page = selectors.token_list(user=request.auth.user, limit=limit, cursor=cursor)
    items = [
        {"id": t.pk, "created": t.created, "expires": t.expires, "current": t.pk == request.auth.pk}
        for t in page.items
    ]
    return {"items": items, "next": page.next}


@auth_router.delete("/tokens/{token_id}", response={204: None})
def delete_token(request, token_id: Id):
    """Revoke one of the caller's tokens; another user's answers 404, like a missing one."""
    token = selectors.token_get(user=request.auth.user, token_id=token_id)
    if token is None:
        raise Http404
    services.token_revoke(token=token)
    return Status(204, None)


@me_router.get("/me", response=UserOut)
def me(request):
    return request.auth.user


@me_router.get("/users", response={200: UserPageOut, 403: ErrorOut})
def list_users(
    request,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Cursor = None,
):
    """All users, for staff with the `auth.view_user` permission (as in the admin)."""
    if not selectors.user_may_list_users(user=request.auth.user):
        raise HttpError(403, "Only staff with the view_user permission may list users.")
    return selectors.user_list(limit=limit, cursor=cursor)
