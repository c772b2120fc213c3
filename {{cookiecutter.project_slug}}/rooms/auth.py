"""Bearer tokens on the websocket handshake, for clients that are not browsers.

Browsers send the session cookie, which Channels' AuthMiddlewareStack turns
into `scope["user"]`. A script or a mobile app sends `Authorization: Bearer
<token>` instead (an API token from `create_api_token`); this middleware
then makes the token's user `scope["user"]`. A bad token is refused before
the connection is accepted.
"""

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from channels.security.websocket import WebsocketDenier

from core.auth import TOKEN_PATTERN, ApiTokenBackend


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
