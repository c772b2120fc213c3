"""With Redis, the layer is shared: another process's group_send reaches our clients."""

import asyncio
import json

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.asgi import ASGIHandler
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from core.testing import asgi_request
from rooms.layers import RedisChannelLayer
from rooms.readiness import channel_layer as check_channel_layer
from rooms.tests.conftest import members, room

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


async def test_an_idle_receive_outlasts_the_blocking_pop(settings):
    """channels_redis waits in BZPOPMIN for brpop_timeout (5 s) on the server.

    redis-py 8's read timeout was 5 s too, so the client gave up first ("Timeout
    reading from Redis") on nearly every idle round; the project's retries hid
    most of them, and a socket was closed with 1011 when they ran out. Without
    retries here, a single read timeout fails the receive. The rounds are
    shortened to 0.5 s, the read timeout derived from them as by default.
    """
    config = settings.CHANNEL_LAYERS["default"]["CONFIG"]
    default = RedisChannelLayer(**config).create_pool(0).connection_kwargs
    assert default["socket_timeout"] > RedisChannelLayer.brpop_timeout
    host = {**config["hosts"][0], "retry": Retry(NoBackoff(), 0)}
    layer = RedisChannelLayer(**{**config, "hosts": [host]}, brpop_timeout=0.5)
    channel = await layer.new_channel()
    waiting = asyncio.ensure_future(layer.receive(channel))
    try:
        # One whole idle round of BZPOPMIN, and as long again.
        done, _ = await asyncio.wait({waiting}, timeout=2 * layer.brpop_timeout)
        assert not done, waiting.exception()
        await layer.send(channel, {"type": "room.message"})
        assert await asyncio.wait_for(waiting, 5) == {"type": "room.message"}
    finally:
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        await layer.close_pools()


def test_a_read_timeout_shorter_than_the_blocking_pop_is_refused(settings):
    config = settings.CHANNEL_LAYERS["default"]["CONFIG"]
    host = {**config["hosts"][0], "socket_timeout": 5}
    with pytest.raises(ImproperlyConfigured, match="socket_timeout"):
        RedisChannelLayer(**{**config, "hosts": [host]})


async def lose_memberships(layer) -> None:
    """What a Redis restart without persistence does: every key (of this test's prefix) is gone."""
    connection = layer.connection(0)
    if keys := await connection.keys(f"{layer.prefix}*"):
        await connection.delete(*keys)


async def wait_for_members(layer, count: int, group: str = "room.lobby") -> set[str]:
    """Poll until `group` has `count` members (at most 5 s); Redis has no event to wait on."""
    for _ in range(250):
        if len(found := await members(layer, group)) == count:
            return found
        await asyncio.sleep(0.02)
    raise AssertionError(f"{group} has {found}, not {count} members")


async def test_memberships_lost_by_redis_are_put_back(channel_layer):
    channel_layer.watch_interval = 0.05
    channels = {await channel_layer.new_channel() for _ in range(3)}
    for channel in channels:
        await channel_layer.group_add("room.lobby", channel)
    gone = channels.pop()
    await channel_layer.group_discard("room.lobby", gone)
    await lose_memberships(channel_layer)
    # Only the channels still in the group come back; the one that left stays out.
    assert await wait_for_members(channel_layer, 2) == channels


async def test_an_open_socket_hears_its_room_again_after_redis_lost_it(channel_layer):
    channel_layer.watch_interval = 0.05
    listener, speaker = room(), room()
    for client in (listener, speaker):
        assert (await client.connect())[0]
    await lose_memberships(channel_layer)
    await wait_for_members(channel_layer, 2)
    await speaker.send_json_to({"message": "still there?"})
    assert (await listener.receive_json_from())["message"] == "still there?"
    for client in (listener, speaker):
        await client.disconnect()


async def test_memberships_are_renewed_before_group_expiry(settings):
    """channels_redis drops a member group_expiry seconds after its group_add."""
    config = {**settings.CHANNEL_LAYERS["default"]["CONFIG"], "group_expiry": 1}
    layer = RedisChannelLayer(**config)
    layer.watch_interval = 0.05
    try:
        channel = await layer.new_channel()
        await layer.group_add("room.lobby", channel)
        # channels_redis drops a member once int(time.time()) - group_expiry is past
        # its group_add: 2 s later in every case, were it never renewed.
        await asyncio.sleep(2)
        await layer.group_send("room.lobby", {"type": "room.message"})
        assert await asyncio.wait_for(layer.receive(channel), 5) == {"type": "room.message"}
    finally:
        await layer.flush()
