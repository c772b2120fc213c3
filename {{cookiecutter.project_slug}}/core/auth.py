"""Bearer-token authentication shared by every write endpoint.

`Authorization: Bearer <token>` is checked by ApiTokenBackend, an ordinary
authentication backend with a native async path (`aauthenticate`), so async
views authenticate with one thread hop for the one query. `token_required`
protects a view and answers 401 JSON; on success `request.user` and
`request.auser()` both return the token's user.
"""

import re
from functools import wraps
from inspect import iscoroutinefunction

from django.contrib.auth import aauthenticate, authenticate
from django.contrib.auth.backends import BaseBackend
from django.http import HttpRequest, JsonResponse

from core.models import ApiToken, hash_token

# token_urlsafe(32) gives 43 characters; anything else is rejected without a query.
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{20,128}")


class ApiTokenBackend(BaseBackend):
    def authenticate(self, request, bearer_token=None):
        if bearer_token is None:
            return None
        token = self._tokens(bearer_token).first()
        return token.user if token else None

    async def aauthenticate(self, request, bearer_token=None):
        if bearer_token is None:
            return None
        token = await self._tokens(bearer_token).afirst()
        return token.user if token else None

    @staticmethod
    def _tokens(bearer_token):
        return ApiToken.objects.select_related("user").filter(
            key_hash=hash_token(bearer_token), user__is_active=True
        )


def parse_bearer(authorization: str) -> str | None:
    """The token of an Authorization header value, or None when its scheme is not Bearer.

    The one parser for every entry point (views, the API, websockets). RFC 9110
    11.4: the scheme is case-insensitive and 1*SP separates it from the
    credentials, so `Bearer  <token>` (two spaces) is the same token. What
    follows is returned as sent, spaces trimmed; TOKEN_PATTERN judges it.
    """
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip(" ")


def bearer_token(request: HttpRequest) -> str | None:
    """The token from the Authorization header, or None when there is no bearer header."""
    return parse_bearer(request.headers.get("Authorization", ""))


def use_user(request: HttpRequest, user) -> None:
    """Make `user` the request's user for both the sync and the async accessor."""
    request.user = user
    request._acached_user = user

    async def auser():
        return user

    request.auser = auser


def unauthorized(detail: str) -> JsonResponse:
    response = JsonResponse({"detail": detail}, status=401)
    response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


async def auser_from_token(request: HttpRequest, token: str):
    """The active user `token` belongs to, made the request's user; None if there is none."""
    if not TOKEN_PATTERN.fullmatch(token):
        return None
    user = await aauthenticate(request, bearer_token=token)
    if user is not None:
        use_user(request, user)
    return user


def user_from_token(request: HttpRequest, token: str):
    """Sync twin of auser_from_token, for sync views."""
    if not TOKEN_PATTERN.fullmatch(token):
        return None
    user = authenticate(request, bearer_token=token)
    if user is not None:
        use_user(request, user)
    return user


MISSING = "Authentication required: send Authorization: Bearer <token>."
INVALID = "Invalid token."


def token_required(view):
    """Require a valid bearer token; works on async and sync views.

    The view is exempt from CSRF: a bearer token is never sent by a browser on
    its own, so a forged cross-site request cannot carry it.
    """
    if iscoroutinefunction(view):

        @wraps(view)
        async def wrapper(request, *args, **kwargs):
            token = bearer_token(request)
            if token is None:
                return unauthorized(MISSING)
            if await auser_from_token(request, token) is None:
                return unauthorized(INVALID)
            return await view(request, *args, **kwargs)

    else:

        @wraps(view)
        def wrapper(request, *args, **kwargs):
            token = bearer_token(request)
            if token is None:
                return unauthorized(MISSING)
            if user_from_token(request, token) is None:
                return unauthorized(INVALID)
            return view(request, *args, **kwargs)

    wrapper.csrf_exempt = True
    return wrapper
