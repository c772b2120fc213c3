"""Who is on the other end of a websocket: its Origin, bearer tokens, and a database that is down.

A browser's handshake carries an Origin, which OriginValidator checks against
ALLOWED_HOSTS, as Channels' own does; one that cannot be parsed as a URL
(`http://[`, a port past 65535) is refused with 403 like any foreign one,
where Channels' raises ValueError: an HTTP 500 and an ASGI traceback.

Browsers send the session cookie, which Channels' AuthMiddlewareStack turns
into `scope["user"]`. A script or a mobile app sends `Authorization: Bearer
<token>` instead (an API token from `create_api_token`); BearerTokenAuthMiddleware
then makes the token's user `scope["user"]`. A bad token is refused before
the connection is accepted.

Both look the user up in the database before the consumer runs. When the
database cannot answer, DatabaseUnavailableMiddleware refuses the handshake
with 503 JSON and Retry-After, as HTTP routes answer, instead of the server's
500 and an ASGI traceback.

Every refusal is logged on one line saying why (rooms.consumers.log_refusal),
never with the token.
"""

import logging
from urllib.parse import urlparse

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from channels.security import websocket
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.db import InterfaceError, OperationalError

from core.auth import TOKEN_PATTERN, ApiTokenBackend, parse_bearer
from rooms.consumers import log_refusal, refuse


def parse_origin(value: bytes):
    """The Origin header parsed as Channels parses it, or None if its host or port is unreadable."""
    try:
        parsed = urlparse(value.decode("latin1"))
        _ = parsed.hostname, parsed.port  # the port is parsed on access
    except ValueError:
        return None
    return parsed


class OriginValidator(websocket.OriginValidator):
    """Channels' OriginValidator, refusing an Origin it cannot parse instead of raising,
    and logging why it refused (rooms.consumers.log_refusal)."""

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            raise ValueError("OriginValidator only guards websocket connections")
        origins = [value for name, value in scope.get("headers", ()) if name == b"origin"]
        origin = origins[-1] if origins else None  # the last one, as Channels reads them
        parsed = None if origin is None else parse_origin(origin)
        if origin is None and self.valid_origin(None):
            return await self.application(scope, receive, send)
        if parsed is not None and self.valid_origin(parsed):
            return await self.application(scope, receive, send)
        shown = None if origin is None else origin[:200].decode("latin1")
        if origin is None:
            log_refusal(scope, "no Origin header")
        elif parsed is None:
            log_refusal(scope, "its Origin %r is not a URL", shown)
        else:
            log_refusal(scope, "its Origin %r is not one of ALLOWED_HOSTS", shown)
        return await WebsocketDenier()(scope, receive, send)


def AllowedHostsOriginValidator(application):
    """Channels' AllowedHostsOriginValidator (its name, its hosts), with the validator above."""
    allowed_hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = ["localhost", "127.0.0.1", "[::1]"]
    return OriginValidator(application, allowed_hosts)


@database_sync_to_async
def user_for_token(token: str):
    # database_sync_to_async closes stale connections around the query: a
    # websocket outlives any one request's connection handling.
    return ApiTokenBackend().authenticate(None, bearer_token=token)


class BearerTokenAuthMiddleware(BaseMiddleware):
    async def __call__(self, scope, receive, send):
        token = parse_bearer(dict(scope["headers"]).get(b"authorization", b"").decode("latin1"))
        if token is not None:
            well_formed = TOKEN_PATTERN.fullmatch(token)
            user = await user_for_token(token) if well_formed else None
            if user is None:
                # Never the token itself: a near miss is someone's credential.
                log_refusal(
                    scope,
                    "its bearer token is %s",
                    "unknown, or its user inactive" if well_formed else "malformed",
                )
                return await WebsocketDenier()(scope, receive, send)
            scope = {**scope, "user": user}
        return await super().__call__(scope, receive, send)


class DatabaseUnavailableMiddleware(BaseMiddleware):
    """Refuse the handshake with 503 when the user lookup finds the database down.

    Wraps AuthMiddlewareStack: the session (cookie) and the bearer token are
    both looked up before anything is sent, so an OperationalError or
    InterfaceError (a server down or restarting, an exhausted pool, SQLite's
    "database is locked") raised before the first message goes out becomes a
    refusal (`rooms.consumers.refuse`) logged at WARNING. Raised later, after
    the handshake, it is left to the consumer.
    """

    async def __call__(self, scope, receive, send):
        sent = False

        async def tracking_send(message):
            nonlocal sent
            sent = True
            await send(message)

        try:
            return await super().__call__(scope, receive, tracking_send)
        except (OperationalError, InterfaceError) as exc:
            if sent:
                raise
            log_refusal(scope, "the database is unavailable (%s)", exc, level=logging.WARNING)
            await refuse(scope, send, 503, "The database is unavailable; retry shortly.")
