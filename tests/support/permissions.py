"""Django permissions given to test users, by their "app_label.codename" name."""

from django.contrib.auth.models import Permission


def grant(user, *names: str) -> None:
    """Give `user` these permissions, e.g. grant(staff, "auth.view_user")."""
    for name in names:
        app_label, codename = name.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
