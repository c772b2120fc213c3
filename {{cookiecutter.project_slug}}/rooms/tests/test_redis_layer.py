"""With Redis, the layer is shared: another process's group_send reaches our clients."""

import asyncio
import json

import pytest
from django.core.handlers.asgi import ASGIHandler

from core.testing import asgi_request
from rooms.layers import RedisChannelLayer
from rooms.readiness import channel_layer as check_channel_layer
from rooms.tests.conftest import room

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_message_sent_by_another_layer_instance_arrives(settings):
    """A second RedisChannelLayer plays another worker process: they meet only in Redis."""
    client = room()
    assert (await client.connect())[0]
    other_process = RedisChannelLayer(**settings.CHANNEL_LAYERS["default"]["CONFIG"])
    event = {
        "type": "room.message",
        "message": "from afar",
        "user": "bob",
        "room": "lobby",
        "sent_at": "2026-01-01T00:00:00+00:00",
    }
    await other_process.group_send("room.lobby", event)
    assert await client.receive_json_from() == {k: v for k, v in event.items() if k != "type"}
    await other_process.close_pools()
    await client.disconnect()


async def test_readiness_check_round_trips_through_redis():
    await check_channel_layer()


async def test_readyz_reports_the_channel_layer():
    response = await asgi_request(ASGIHandler(), path="/readyz")
    assert json.loads(response.body)["checks"]["channel_layer"]["ok"] is True


async def test_more_sockets_leave_at_once_than_the_pool_has_connections(channel_layer):
    """Each closing socket runs group_discard; a burst past the pool waits for a connection.

    With channels_redis' own pool, the commands past its 100 connections failed
    with MaxConnectionsError.
    """
    channels = [f"burst.{n}" for n in range(300)]
    await asyncio.gather(*(channel_layer.group_add("room.burst", c) for c in channels))
    await asyncio.gather(*(channel_layer.group_discard("room.burst", c) for c in channels))
