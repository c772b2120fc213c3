"""A chat room over a websocket: every message goes to everyone in the room.

Messages travel through the channel layer as a group per room, so clients
connected to different worker processes meet when the layer is Redis.
"""

import json
import logging
import re
import time
from collections import deque

from channels.consumer import AsyncConsumer, get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.utils import timezone

from core import client_json

logger = logging.getLogger(__name__)

ROOM_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
# RFC 6455 close codes. The page (rooms.js) reconnects, with backoff, on every code.
POLICY_VIOLATION = 1008
INTERNAL_ERROR = 1011
# Seconds a refused client should wait before it tries again.
RETRY_AFTER_SECONDS = 5


def log_refusal(scope, reason: str, *args, level: int = logging.INFO) -> None:
    """Log why a handshake is refused, on one line with the path and the client's address.

    `reason` is a %-format for `args`; it names what was wrong, never a
    credential (no token, no cookie). INFO for a client's mistake, which
    the client is told by the refusal; WARNING for this server's fault.
    """
    client = scope.get("client") or ("unknown", None)
    logger.log(
        level,
        "Refused a websocket to %r from %s: " + reason,
        scope.get("path", "")[:200],
        client[0],
        *args,
    )


async def refuse(scope, send, status: int, detail: str) -> None:
    """Refuse a websocket handshake with an HTTP response: JSON `{"detail": ...}`, Retry-After.

    Needs the ASGI "websocket.http.response" extension (uvicorn has it); without
    it, closing before accept (HTTP 403) is the only refusal there is. `send`
    is the ASGI send callable.
    """
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close"})
        return
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
    ]
    await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body})


class RoomConsumer(AsyncJsonWebsocketConsumer):
    accepted = False
    # Set once this side sent its close: nothing more may be sent on the socket.
    closed = False
    group: str | None = None

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        except OSError:
            # The client left (uvicorn's ClientDisconnected, say, when a room
            # message reaches a socket that just closed): the server handles it.
            raise
        except Exception:
            if not self.accepted:
                raise
            # The channel layer (Redis) failed under an open socket. Without
            # this the server drops the connection with no close frame (1006);
            # 1011 tells the client to reconnect.
            logger.exception("Closed a room socket: the room stopped working")
            if not self.closed:
                self.closed = True
                await send({"type": "websocket.close", "code": INTERNAL_ERROR})
        finally:
            # Every way out (disconnect, the 1011 above, a send that failed,
            # our own close, cancellation) leaves the room; otherwise the layer
            # would queue the room's messages for this channel for a day.
            await self.leave_room()

    async def dispatch(self, message):
        """Channels' dispatch, minus the thread hop before every message.

        Channels runs close_old_connections through sync_to_async before each
        handler, for consumers that use the ORM between messages. This one uses
        no database once connected (the user is resolved by the middleware
        before it runs), so that hop bought nothing: a broadcast to 1,000
        sockets spent about half of the workers' CPU on it. ORM code added here
        belongs in database_sync_to_async, which closes stale connections
        around each call itself.
        """
        if self.closed and message["type"] != "websocket.disconnect":
            return  # a frame or room message that arrived after our close: nothing to do
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self):
        self.room = self.scope["url_route"]["kwargs"]["room"]
        if not ROOM_NAME.fullmatch(self.room):
            log_refusal(self.scope, "a room name is 1 to 64 letters, digits, '_' or '-'")
            await self.close()  # before accept: the handshake is refused
            return
        user = self.scope["user"]  # resolved by AuthMiddlewareStack before we run
        self.username = user.get_username() if user.is_authenticated else "anonymous"
        self.recent: deque[float] = deque()  # when the last frames arrived
        # Set before the layer is asked, so that a cancellation meanwhile still leaves.
        self.group = f"room.{self.room}"
        try:
            await self.channel_layer.group_add(self.group, self.channel_name)
        except Exception as exc:
            self.group = None  # nothing to leave: the layer refused, and would refuse that too
            log_refusal(self.scope, "the channel layer failed (%r)", exc, level=logging.WARNING)
            await self.refuse(503, "The room is unavailable; retry shortly.")
            return
        await self.accept()
        self.accepted = True

    async def refuse(self, status: int, detail: str) -> None:
        """Refuse the handshake with an HTTP response rather than a bare 403 (see refuse())."""
        # AsyncConsumer.send sends an ASGI message; this class's send() sends text.
        await refuse(self.scope, lambda message: AsyncConsumer.send(self, message), status, detail)

    async def close(self, code=None, reason=None):
        self.closed = True
        await self.leave_room()
        await super().close(code, reason)

    async def disconnect(self, code):
        await self.leave_room()

    async def leave_room(self) -> None:
        """Take this socket out of its room's group, once; a failing layer is logged, not raised."""
        group, self.group = self.group, None
        if group is None:
            return
        try:
            await self.channel_layer.group_discard(group, self.channel_name)
        except Exception as exc:
            # Redis is down: its next start (without persistence) or group_expiry drops it.
            logger.warning(
                "Could not leave room group %s: the channel layer failed (%r)", group, exc
            )

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        """Check each frame; a bad one is answered with an error, never closes the socket."""
        if self.flooding():
            await self.send_json(
                {
                    "error": f"rate limit exceeded: at most {settings.ROOMS_RATE_LIMIT} "
                    f"frames per {settings.ROOMS_RATE_WINDOW_SECONDS:g} seconds"
                }
            )
            await self.close(code=POLICY_VIOLATION)
            # Frames the client sent meanwhile are still queued: none is handled after close.
            raise StopConsumer
        if text_data is None:
            await self.send_json(
                {"error": 'binary frames are not accepted: send JSON text {"message": "..."}'}
            )
            return
        try:
            # Lone surrogates, NaN, huge integers, deep nesting: all a ClientJSONError.
            content = client_json.loads(text_data)
        except client_json.ClientJSONError as exc:
            await self.send_json({"error": f"{exc}: send " + '{"message": "..."}'})
            return
        problem = message_problem(content)
        if problem:
            await self.send_json({"error": problem})
            return
        await self.channel_layer.group_send(
            self.group,
            {
                "type": "room.message",
                "message": content["message"],
                "user": self.username,
                "room": self.room,
                "sent_at": timezone.now().isoformat(),
            },
        )

    async def room_message(self, event):
        await self.send_json({key: event[key] for key in ("message", "user", "room", "sent_at")})

    def flooding(self) -> bool:
        """Count this frame; True once more than ROOMS_RATE_LIMIT arrived within the window."""
        now = time.monotonic()
        self.recent.append(now)
        while self.recent[0] <= now - settings.ROOMS_RATE_WINDOW_SECONDS:
            self.recent.popleft()
        return len(self.recent) > settings.ROOMS_RATE_LIMIT


def message_problem(content) -> str | None:
    if not isinstance(content, dict) or "message" not in content:
        return 'missing "message": send {"message": "..."}'
    message = content["message"]
    if not isinstance(message, str):
        return '"message" must be a string'
    if not message.strip():
        return '"message" is empty'
    if len(message) > settings.ROOMS_MAX_MESSAGE_LENGTH:
        return f'"message" is longer than {settings.ROOMS_MAX_MESSAGE_LENGTH} characters'
    unexpected = sorted(content.keys() - {"message"})
    if unexpected:
        return f"unexpected fields: {', '.join(unexpected)}"
    return None
