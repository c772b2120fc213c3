from channels.security.websocket import WebsocketDenier
from django.urls import path, re_path

from rooms.consumers import RoomConsumer, log_refusal


class UnknownRoute(WebsocketDenier):
    """Refuses (HTTP 403) a handshake to a path no route serves, and logs it."""

    async def connect(self):
        log_refusal(self.scope, "no websocket route serves this path")
        await super().connect()


websocket_urlpatterns = [
    path("ws/rooms/<str:room>/", RoomConsumer.as_asgi()),
    # Keep last: any other path is refused (HTTP 403) rather than raising (500).
    re_path(r"", UnknownRoute.as_asgi()),
]
