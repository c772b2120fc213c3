from django.apps import AppConfig


class RequestContextConfig(AppConfig):
    name = "request_context"
    verbose_name = "Request context"
    # Listed on the home page (core.views.home).
    summary = "A request id and Server-Timing on every response, and JSON logs that carry the id."
