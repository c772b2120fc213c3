"""ASGI entry point: `uvicorn config.asgi:application`."""

import os

import django
{%- if cookiecutter.use_channels %}
from channels.routing import ProtocolTypeRouter, URLRouter
{%- endif %}
from django.conf import settings
from django.core.handlers import asgi

{% if cookiecutter.use_sse -%}
from events.asgi import ASGIHandler
{%- else -%}
from core.asgi import ASGIHandler
{%- endif %}

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup(set_prefix=False)

# Django's handler, minus a thread for requests that run no sync code
{%- if cookiecutter.use_sse %}
# (core/asgi.py), and with one thread for all open event streams (events/asgi.py).
{%- else %}
# (core/asgi.py).
{%- endif %}
# Django's own with DJANGO_STOCK_CLASSES (config/settings.py).
handler = asgi.ASGIHandler if settings.DJANGO_STOCK_CLASSES else ASGIHandler
{%- if cookiecutter.use_channels %}
http_application = handler()
{%- else %}
application = handler()
{%- endif %}
{%- if cookiecutter.use_channels %}

# Imported once the apps are loaded: these import models.
from channels.auth import AuthMiddlewareStack

from rooms.auth import (
    AllowedHostsOriginValidator,
    BearerTokenAuthMiddleware,
    DatabaseUnavailableMiddleware,
)
from rooms.routing import websocket_urlpatterns

application = ProtocolTypeRouter(
    {
        "http": http_application,
        # A foreign Origin is refused first; then the user (session cookie, or
        # a bearer token for clients that are not browsers), 503 if the
        # database is down; then the route.
        "websocket": AllowedHostsOriginValidator(
            DatabaseUnavailableMiddleware(
                AuthMiddlewareStack(BearerTokenAuthMiddleware(URLRouter(websocket_urlpatterns)))
            )
        ),
    }
)
{%- endif %}
{%- if cookiecutter.use_httpx %}

# Django does not speak the ASGI lifespan protocol; this answers it and closes
# the shared httpx client when the server shuts down (upstreams/lifespan.py).
from upstreams.lifespan import Lifespan

application = Lifespan(application)
{%- endif %}
