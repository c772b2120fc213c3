"""Who is on the other end of a websocket: bearer tokens, and a database that is down.

Browsers send the session cookie, which Channels' AuthMiddlewareStack turns
into `scope["user"]`. A script or a mobile app sends `Authorization: Bearer
<token>` instead (an API token from `create_api_token`); BearerTokenAuthMiddleware
then makes the token's user `scope["user"]`. A bad token is refused before
the connection is accepted.

Both look the user up in the database before the consumer runs. When the
database cannot answer, DatabaseUnavailableMiddleware refuses the handshake
with 503 JSON and Retry-After, as HTTP routes answer, instead of the server's
500 and an ASGI traceback.
"""

import logging

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from channels.security.websocket import WebsocketDenier
from django.db import InterfaceError, OperationalError

from core.auth import TOKEN_PATTERN, ApiTokenBackend
from rooms.consumers import refuse

logger = logging.getLogger(__name__)


@database_sync_to_async
def user_for_token(token: str):
    # database_sync_to_async closes stale connections around the query: a
    # websocket outlives any one request's connection handling.
    return ApiTokenBackend().authenticate(None, bearer_token=token)


class BearerTokenAuthMiddleware(BaseMiddleware):
    async def __call__(self, scope, receive, send):
        scheme, _, token = (
            dict(scope["headers"]).get(b"authorization", b"").decode("latin1").partition(" ")
        )
        if scheme.lower() == "bearer":
            token = token.strip()
            user = await user_for_token(token) if TOKEN_PATTERN.fullmatch(token) else None
            if user is None:
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
            logger.warning("Refused a websocket: the database is unavailable (%s)", exc)
            await refuse(scope, send, 503, "The database is unavailable; retry shortly.")
