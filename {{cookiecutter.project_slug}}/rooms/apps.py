from django.apps import AppConfig


class RoomsConfig(AppConfig):
    name = "rooms"
    verbose_name = "Chat rooms"
    # On the home page (core.views.home): a summary and a live panel.
    summary = "Websockets at /ws/rooms/<room>/: every message reaches everyone in the room."
    home_panel = "rooms/panel.html"
