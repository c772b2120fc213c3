from typing import ClassVar

from django.apps import AppConfig


class RoomsConfig(AppConfig):
    name = "rooms"
    verbose_name = "Chat rooms"
    # On the home page (core.views.home): a summary and a live panel.
    summary = "Websockets at /ws/rooms/<room>/: every message reaches everyone in the room."
    home_panel = "rooms/panel.html"
    # How `manage.py runserver` (core) has uvicorn serve websockets, as the README's
    # serve command does: this app's protocol (rooms/protocol.py), 64 KiB frames.
    uvicorn_options: ClassVar[dict] = {
        "ws": "rooms.protocol:WebSocketProtocol",
        "ws_max_size": 64 * 1024,
    }
