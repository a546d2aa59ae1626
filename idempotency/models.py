from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

# How long a key is remembered: a client retries within minutes; a day covers long outages.
KEY_LIFETIME = timedelta(hours=24)
KEY_MAX_LENGTH = 255


class IdempotencyKey(models.Model):
    """The response a write gave to one client-chosen key, stored in the write's transaction."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="idempotency_keys"
    )
    key = models.CharField(max_length=KEY_MAX_LENGTH)
    # sha256 of method, path and body: the same key sent with another request is refused.
    fingerprint = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    created = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            # What makes concurrent retries safe: a second insert waits for the first, then fails.
            models.UniqueConstraint(fields=["owner", "key"], name="idempotency_owner_key"),
        ]
        indexes = [
            # Each keyed write deletes its owner's expired keys: an index range, usually empty.
            models.Index(fields=["owner", "created"], name="idempotency_owner_created"),
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.owner}, {self.response_status})"
