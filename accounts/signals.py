from django.conf import settings
from django.contrib.auth.hashers import is_password_usable
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver

from observability import events

from .models import ApiToken

# A save that changes neither of these cannot end a user's tokens: it costs no extra query.
_WATCHED_FIELDS = {"password", "is_active"}


@receiver(pre_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="tokens_end_with_the_password")
def note_whether_tokens_end(sender, instance, raw: bool, using: str, update_fields, **kwargs):
    """Decide, before the row changes, whether this save ends every bearer token of the user.

    It does for a new password, a password set unusable (the admin's "disable password-based
    authentication") and a deactivation: each means "this person must no longer get in", and
    revoking acts at once. Deactivation deletes the tokens rather than suspend them, so that
    reactivating the account does not bring old tokens back.

    `set_password()` keeps the new raw password in `_password` until `save()` has stored it
    (the same condition Django uses to call the validators' `password_changed()`). Upgrading
    a hash at login clears it before saving, so that does not log anyone out.
    """
    instance._ends_api_tokens = (
        not raw
        and not instance._state.adding
        and _ends_tokens(sender, instance, using, update_fields)
    )


def _ends_tokens(sender, instance, using: str, update_fields) -> bool:
    if getattr(instance, "_password", None) is not None:
        return True
    if update_fields is not None and not _WATCHED_FIELDS & set(update_fields):
        return False
    # The row as stored, not as this instance was loaded: it may be stale.
    before = (
        sender._base_manager.using(using)
        .filter(pk=instance.pk)
        .values("password", "is_active")
        .first()
    )
    if before is None:
        return False
    deactivated = before["is_active"] and not instance.is_active
    made_unusable = instance.password != before["password"] and not is_password_usable(
        instance.password
    )
    return deactivated or made_unusable


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="revoke_tokens")
def revoke_tokens(sender, instance, created: bool, **kwargs) -> None:
    """Carry out what note_whether_tokens_end decided, once the save has gone through."""
    if getattr(instance, "_ends_api_tokens", False):
        instance._ends_api_tokens = False
        if not created:
            events.tokens_revoked(ApiToken.objects.filter(user=instance).delete()[0])
