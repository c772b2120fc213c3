{% if cookiecutter.broker == "redis" -%}
import uuid

{% endif -%}
import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from config.asgi import application

# Browsers always send an Origin; AllowedHostsOriginValidator requires one of ALLOWED_HOSTS.
SAME_ORIGIN = (b"origin", b"http://localhost")


@pytest.fixture(autouse=True)
async def channel_layer(settings{% if cookiecutter.broker == "redis" %}, redis_server{% endif %}):
{%- if cookiecutter.broker == "redis" %}
    """A fresh channel layer per test, on Redis keys of its own."""
    default = settings.CHANNEL_LAYERS["default"]
    config = {**default["CONFIG"], "prefix": f"test-{uuid.uuid4().hex}"}
    settings.CHANNEL_LAYERS = {"default": {**default, "CONFIG": config}}
{%- else %}
    """A fresh channel layer per test (Channels rebuilds it when the setting changes)."""
    settings.CHANNEL_LAYERS = {**settings.CHANNEL_LAYERS}
{%- endif %}
    layer = get_channel_layer()
    yield layer
{%- if cookiecutter.broker == "redis" %}
    await layer.flush()
    await layer.close_pools()
{%- endif %}


def room(name: str = "lobby", headers=()) -> WebsocketCommunicator:
    """A websocket to a room through the project's whole ASGI application."""
    return WebsocketCommunicator(application, f"/ws/rooms/{name}/", headers=[SAME_ORIGIN, *headers])


async def members(layer, group: str = "room.lobby") -> set[str]:
    """The channels in `group`, read from the layer's own storage."""
{%- if cookiecutter.broker == "redis" %}
    connection = layer.connection(layer.consistent_hash(group))
    return {name.decode() for name in await connection.zrange(layer._group_key(group), 0, -1)}
{%- else %}
    return set(layer.groups.get(group, {}))
{%- endif %}
