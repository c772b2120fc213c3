from channels.security.websocket import WebsocketDenier
from django.urls import path, re_path

from rooms.consumers import RoomConsumer

websocket_urlpatterns = [
    path("ws/rooms/<str:room>/", RoomConsumer.as_asgi()),
    # Keep last: any other path is refused (HTTP 403) rather than raising (500).
    re_path(r"", WebsocketDenier.as_asgi()),
]
