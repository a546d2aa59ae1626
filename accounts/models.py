import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

TOKEN_PREFIX = "kn_"  # noqa: S105 (a label, not a secret)


def hash_token(raw: str) -> str:
    """Tokens carry 256 random bits, so a fast hash is safe; only this is stored.

    Tokens are found by this hash through a unique index rather than compared one by one: what
    the lookup's timing could reveal is a prefix of a SHA-256 digest, never of the token itself.
    """
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


def hash_username(username: str) -> str:
    """Failed logins are counted by a digest: people type passwords into the username field."""
    return hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()


class LoginFailure(models.Model):
    """One failed login (API token or admin), counted per account and per client address."""

    username_hash = models.CharField(max_length=64)
    address = models.GenericIPAddressField(null=True, blank=True)
    at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        indexes = [
            models.Index(fields=["username_hash", "at"], name="login_failure_account"),
            models.Index(fields=["address", "at"], name="login_failure_address"),
        ]

    def __str__(self) -> str:
        return f"login failure from {self.address or 'unknown address'} at {self.at:%Y-%m-%d %H:%M}"
