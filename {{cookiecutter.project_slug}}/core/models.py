import hashlib
import secrets

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """The project's user model, swappable from day one as Django recommends."""


def hash_token(raw: str) -> str:
    """SHA-256 of a token.

    Tokens are 256 random bits, so a fast unsalted hash is enough: there is no
    dictionary to attack, and it lets a request find its token by index lookup.
    """
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiToken(models.Model):
    """A bearer token for the API. Only its hash is stored; the token is shown once."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, blank=True)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(
        max_length=8, editable=False, help_text="First characters, to tell tokens apart."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    @staticmethod
    def generate() -> str:
        return secrets.token_urlsafe(32)

    @classmethod
    def issue(cls, user, name: str = "") -> tuple["ApiToken", str]:
        """Create a token for `user`; return the row and the raw token."""
        raw = cls.generate()
        token = cls.objects.create(user=user, name=name, key_hash=hash_token(raw), prefix=raw[:8])
        return token, raw

    @classmethod
    async def aissue(cls, user, name: str = "") -> tuple["ApiToken", str]:
        raw = cls.generate()
        token = await cls.objects.acreate(
            user=user, name=name, key_hash=hash_token(raw), prefix=raw[:8]
        )
        return token, raw
