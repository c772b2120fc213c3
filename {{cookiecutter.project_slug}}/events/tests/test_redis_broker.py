"""What only the Redis broker does: one reader per process, outages, readiness."""

import asyncio
import contextlib
import json
import logging
import socket

import pytest
import redis
import redis.asyncio
from django.core.handlers.asgi import ASGIHandler

from core.testing import asgi_request
from events.broker import (
    MAX_ID_PART,
    BrokerUnavailable,
    Replay,
    Reset,
    aclose_broker,
    apublish,
    publish,
)
from events.redis_broker import MAX_CONNECTIONS
from events.tests.sse_client import SSEClient


@pytest.fixture
async def admin(settings, redis_server):
    client = redis.asyncio.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    yield client
    await client.aclose()


async def connections(admin) -> int:
    return (await admin.info("clients"))["connected_clients"]


async def test_streams_share_one_reader_connection(app, broker, admin):
    before = await connections(admin)
    async with contextlib.AsyncExitStack() as stack:
        clients = []
        for _ in range(30):  # one after another, as clients trickle in
            clients.append(await stack.enter_async_context(SSEClient(app)))
            await clients[-1].message()
        # The blocked reader, and one pooled connection the replays took turns on.
        assert await connections(admin) - before <= 2
        event_id = await apublish("to-all", 1)
        for client in clients:
            assert [m.id for m in await client.events(1)] == [event_id]


async def test_a_burst_of_clients_stays_within_the_pool(app, broker, admin):
    before = await connections(admin)
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(SSEClient(app)) for _ in range(50)]
        await asyncio.gather(*(client.message() for client in clients))
        assert await connections(admin) - before <= MAX_CONNECTIONS


async def test_the_reader_reconnects_when_its_connection_drops(app, broker, admin):
    async with SSEClient(app) as client:
        await client.message()
        readers = [c for c in await admin.client_list() if c["cmd"] == "xread"]
        assert len(readers) == 1
        await admin.client_kill_filter(_id=readers[0]["id"])
        ids = [await apublish("after-drop", n) for n in range(3)]
        received = await client.events(3, seconds=10)
    assert [m.id for m in received] == ids


async def test_a_replay_reads_bounded_pages(app, broker, admin, sse_settings):
    """Every XRANGE of a replay carries a COUNT of at most one page (20 whole-retention
    XRANGEs took a worker from 421 MB to 1.9 GB)."""
    ids = [await apublish("count", n) for n in range(sse_settings.SSE_RETENTION)]
    commands = []
    async with admin.monitor() as monitor:

        async def watch():
            while (command := (await monitor.next_command())["command"]) != "ECHO end-of-replay":
                if command.startswith("XRANGE"):
                    commands.append(command.split())

        watcher = asyncio.create_task(watch())
        async with SSEClient(app, headers=[("Last-Event-ID", ids[0])]) as client:
            received = await client.events(len(ids) - 1)
        await admin.echo("end-of-replay")
        async with asyncio.timeout(5):
            await watcher
    assert [m.id for m in received] == ids[1:]
    pages = [command for command in commands if command[2].startswith("(")]
    assert len(pages) >= (len(ids) - 1) // broker.page_size
    for command in commands:
        assert command[-2] == "COUNT"
        assert int(command[-1]) <= broker.page_size


async def test_redis_refusing_an_id_is_a_reset_not_an_outage(broker, caplog):
    """Ids are range-checked before they reach Redis; should Redis refuse one anyway
    ("invalid start ID for the interval"), the client starts over."""
    await apublish("count", 1)
    largest = (MAX_ID_PART, MAX_ID_PART)  # nothing can follow it: Redis refuses "(" + it
    page = await broker.page(Replay(after=largest, until=largest))
    assert page == Reset(f"{MAX_ID_PART}-{MAX_ID_PART}", "unknown")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
async def unreachable_redis(settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    yield
    await aclose_broker()


async def test_publish_while_redis_is_down_raises(unreachable_redis):
    with pytest.raises(BrokerUnavailable):
        await apublish("lost", 1)


@pytest.mark.django_db(transaction=True)
async def test_publish_endpoint_answers_503_while_redis_is_down(
    unreachable_redis, async_client, token_headers
):
    response = await async_client.post(
        "/events/publish/", {"event": "x", "data": 1}, "application/json", headers=token_headers
    )
    assert response.status_code == 503
    assert response["Retry-After"] == "1"


async def test_stream_while_redis_is_down_asks_the_client_to_retry(app, unreachable_redis):
    async with SSEClient(app) as client:
        message = await client.message()
        async with asyncio.timeout(5):
            await client.ended.wait()
    assert client.status == 200  # EventSource gives up for good on an error status
    assert message.retry == "3000"
    assert "unavailable" in message.comment


async def test_readyz_checks_redis(settings, redis_server):
    response = await asgi_request(ASGIHandler(), path="/readyz")
    assert json.loads(response.body)["checks"]["redis"]["ok"] is True
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    response = await asgi_request(ASGIHandler(), path="/readyz")
    assert response.status == 503
    assert json.loads(response.body)["checks"]["redis"] == {
        "ok": False,
        "ms": json.loads(response.body)["checks"]["redis"]["ms"],
        "error": "ConnectionError",
    }


async def test_retention_is_exact_despite_approximate_trimming(app, broker, admin, sse_settings):
    """Each entry records the one before it: a reset happens only when something was trimmed."""
    ids = [await apublish("count", n) for n in range(sse_settings.SSE_RETENTION * 6)]
    [(_, oldest)] = await admin.xrange(sse_settings.SSE_STREAM_KEY, count=1)
    kept_from = ids.index(oldest["prev"]) + 1
    assert kept_from > 0  # something was trimmed
    async with SSEClient(app, headers=[("Last-Event-ID", ids[kept_from - 1])]) as client:
        assert [m.id for m in await client.events(len(ids) - kept_from)] == ids[kept_from:]
    async with SSEClient(app, headers=[("Last-Event-ID", ids[kept_from - 2])]) as client:
        (reset,) = await client.events(1)
    assert (reset.event, json.loads(reset.data)) == ("reset", {"reason": "expired"})


def test_sync_publish_works_without_an_event_loop(settings, redis_server, sse_settings):
    """A management command publishes over a sync connection."""
    event_id = publish("from-a-command", {"ok": True})
    client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    try:
        [(found_id, fields)] = client.xrange(sse_settings.SSE_STREAM_KEY)
        client.delete(sse_settings.SSE_STREAM_KEY)
    finally:
        client.close()
    assert found_id == event_id
    assert (fields["event"], fields["data"]) == ("from-a-command", '{"ok":true}')
