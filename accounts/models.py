import hashlib
import secrets

from django.conf import settings
from django.db import models

TOKEN_PREFIX = "kn_"  # noqa: S105 (a label, not a secret)


def hash_token(raw: str) -> str:
    """Tokens carry 256 random bits, so a fast hash is safe; only this is stored."""
    return hashlib.sha256(raw.encode()).hexdigest()


def new_raw_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class ApiToken(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    expires = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"token {self.pk} of {self.user} (expires {self.expires:%Y-%m-%d})"
