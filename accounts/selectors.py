from django.contrib.auth import get_user_model


def user_list(*, limit: int, after_id: int = 0) -> tuple[list, str | None]:
    """Users by id, one page at a time; the cursor is the last id seen."""
    users = list(get_user_model().objects.filter(pk__gt=after_id).order_by("pk")[: limit + 1])
    has_more = len(users) > limit
    users = users[:limit]
    return users, str(users[-1].pk) if has_more else None
