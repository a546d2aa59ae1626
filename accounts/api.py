from typing import Annotated

from ninja import Query, Router, Status
from ninja.errors import HttpError
from ninja.security import HttpBearer

from . import selectors, services
from .schemas import TokenIn, TokenOut, UserOut, UserPageOut


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


@auth_router.post("/token", response={201: TokenOut}, auth=None)
def create_token(request, payload: TokenIn):
    """Exchange a username and password for a bearer token."""
    issued = services.token_login(username=payload.username, password=payload.password)
    if issued is None:
        raise HttpError(401, "Invalid username or password.")
    raw, token = issued
    return Status(201, {"token": raw, "expires": token.expires})


@auth_router.delete("/token", response={204: None})
def revoke_token(request):
    """Revoke the token this request was made with."""
    services.token_revoke(token=request.auth)
    return Status(204, None)


@me_router.get("/me", response=UserOut)
def me(request):
    return request.auth.user


@me_router.get("/users", response=UserPageOut)
def list_users(
    request,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
):
    """All users, for staff only."""
    if not request.auth.user.is_staff:
        raise HttpError(403, "Staff only.")
    users, next_cursor = selectors.user_list(limit=limit, after_id=cursor)
    return {"items": users, "next": next_cursor}
