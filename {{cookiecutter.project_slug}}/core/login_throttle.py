"""Failed password logins lock out the username and client address they came from.

Built on Django's own hooks, so no middleware runs on any other request:

- `record_failure`, a receiver of `user_login_failed`, counts the failures of
  each (username, client address) pair in the default cache. The
  LOGIN_FAILURE_LIMIT-th failure within LOGIN_LOCKOUT_SECONDS locks the pair
  out for LOGIN_LOCKOUT_SECONDS and logs one WARNING.
- ThrottledModelBackend, Django's ModelBackend in AUTHENTICATION_BACKENDS,
  raises PermissionDenied for a username and password from a locked-out pair,
  which makes `authenticate()` refuse them before any password is checked: the
  right password is refused too until the lockout ends.
- ThrottledAdminAuthenticationForm tells the admin login form's user why.

The address is REMOTE_ADDR: behind a proxy, uvicorn sets it from
X-Forwarded-For only for the proxies in FORWARDED_ALLOW_IPS. Bearer tokens are
not counted: they are 256-bit random values, not passwords.

With the in-process cache (no Redis), each worker process counts on its own:
a client spread over N workers gets up to N x LOGIN_FAILURE_LIMIT tries.
"""

import hashlib
import logging
import math
import time

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_login_failed
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.dispatch import receiver
from django.http import HttpRequest

logger = logging.getLogger(__name__)


def clock() -> float:
    """Seconds since the epoch: lockouts end at a wall-clock time every process agrees on."""
    return time.time()


def client_address(request: HttpRequest | None) -> str:
    if request is None:
        return "unknown"
    return request.META.get("REMOTE_ADDR") or "unknown"


def _key(kind: str, username: str, address: str) -> str:
    # Hashed: a username may hold any character, and cache keys may not.
    pair = hashlib.sha256(f"{username.casefold()}\0{address}".encode()).hexdigest()
    return f"login-throttle:{kind}:{pair}"


def locked_out_until(username: str, address: str) -> float | None:
    """When the pair's lockout ends (seconds since the epoch), or None if it is not locked out."""
    until = cache.get(_key("lock", username, address))
    return until if until is not None and clock() < until else None


async def alocked_out_until(username: str, address: str) -> float | None:
    until = await cache.aget(_key("lock", username, address))
    return until if until is not None and clock() < until else None


@receiver(user_login_failed, dispatch_uid="core.login_throttle.record_failure")
def record_failure(sender, credentials: dict, request: HttpRequest | None = None, **kwargs):
    """Count a failed password login; lock its pair out at LOGIN_FAILURE_LIMIT failures."""
    # Login forms pass `username` whatever the user model's USERNAME_FIELD is.
    username = credentials.get("username", credentials.get(get_user_model().USERNAME_FIELD))
    if not isinstance(username, str):
        return  # a bearer token or another backend's credentials
    address = client_address(request)
    if locked_out_until(username, address) is not None:
        return  # refused while locked out: it does not extend the lockout
    window = settings.LOGIN_LOCKOUT_SECONDS
    failures = _key("failures", username, address)
    cache.add(failures, 0, timeout=window)  # the window starts at the first failure
    try:
        count = cache.incr(failures)
    except ValueError:  # expired between add() and incr()
        cache.set(failures, count := 1, timeout=window)
    if count < settings.LOGIN_FAILURE_LIMIT:
        return
    cache.set(_key("lock", username, address), clock() + window, timeout=window + 1)
    cache.delete(failures)
    logger.warning(
        "Locked out password logins for username %r from %s for %d s after %d failures",
        username,
        address,
        window,
        count,
    )


class ThrottledModelBackend(ModelBackend):
    """Django's ModelBackend, refusing every password from a locked-out pair.

    It replaces ModelBackend rather than running before it, so that sessions
    (and test clients' force_login) record a backend that can load the user.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        name = username if username is not None else kwargs.get(self.username_field())
        if isinstance(name, str) and locked_out_until(name, client_address(request)):
            raise PermissionDenied
        return super().authenticate(request, username, password, **kwargs)

    async def aauthenticate(self, request, username=None, password=None, **kwargs):
        name = username if username is not None else kwargs.get(self.username_field())
        if isinstance(name, str) and await alocked_out_until(name, client_address(request)):
            raise PermissionDenied
        return await super().aauthenticate(request, username, password, **kwargs)

    @staticmethod
    def username_field() -> str:
        return get_user_model().USERNAME_FIELD


class ThrottledAdminAuthenticationForm(AdminAuthenticationForm):
    """The admin's login form, saying so when the login was refused by a lockout."""

    def get_invalid_login_error(self) -> ValidationError:
        username = self.cleaned_data.get("username")
        until = username and locked_out_until(username, client_address(self.request))
        if until:
            minutes = max(1, math.ceil((until - clock()) / 60))
            return ValidationError(
                "Too many failed logins: try again in %(minutes)d minutes.",
                code="locked_out",
                params={"minutes": minutes},
            )
        return super().get_invalid_login_error()
