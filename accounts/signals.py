from django.conf import settings
from django.db.models.signals import post_save
from django.dispatch import receiver

from .models import ApiToken


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="revoke_tokens_on_password")
def revoke_tokens_on_password_change(sender, instance, created: bool, **kwargs) -> None:
    """A new password revokes every bearer token: the admin's form, `changepassword`, the API.

    `set_password()` keeps the new raw password in `_password` until `save()` has stored it
    (the same condition Django uses to call the validators' `password_changed()`). Upgrading
    a hash at login clears it before saving, so that does not log anyone out.
    """
    if not created and getattr(instance, "_password", None) is not None:
        ApiToken.objects.filter(user=instance).delete()
