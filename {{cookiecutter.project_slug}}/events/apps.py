from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "events"
    verbose_name = "Server-Sent Events"
    # On the home page (core.views.home): a summary and a live panel.
    summary = "GET /events/ streams every published event; POST /events/publish/ publishes one."
    home_panel = "events/panel.html"
