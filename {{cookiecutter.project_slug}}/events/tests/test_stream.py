"""GET /events/ through the real ASGI handler, against the configured broker."""

import asyncio
import contextlib
import json
import threading

import pytest
from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler

from events.broker import InvalidEvent, apublish, position, publish
from events.tests.sse_client import SSEClient


async def test_stream_headers_and_first_message(app, broker):
    async with SSEClient(app) as client:
        first = await client.message()
    assert client.status == 200
    assert client.headers["content-type"] == "text/event-stream"
    assert client.headers["cache-control"] == "no-cache"
    assert client.headers["x-accel-buffering"] == "no"
    assert first.retry == "3000"
    assert position(first.id) is not None
    assert first.data is None  # sets the client's last id, fires no event


async def test_events_carry_id_name_and_the_data_as_json(app, broker):
    async with SSEClient(app) as client:
        await client.message()
        first_id = await apublish("greeting", {"hello": "wörld", "n": [1, 2]})
        second_id = await apublish("tick", 7)
        received = await client.events(2)
    assert [(m.id, m.event) for m in received] == [(first_id, "greeting"), (second_id, "tick")]
    assert json.loads(received[0].data) == {"hello": "wörld", "n": [1, 2]}
    assert received[1].data == "7"
    assert position(first_id) < position(second_id)


async def test_data_with_newlines_stays_one_data_line(app, broker):
    async with SSEClient(app) as client:
        await client.message()
        await apublish("note", "line one\nline two\r\n")
        (received,) = await client.events(1)
    assert json.loads(received.data) == "line one\nline two\r\n"


async def test_heartbeat_comment_on_an_idle_stream(app, broker, settings):
    settings.SSE_HEARTBEAT_SECONDS = 0.05
    async with SSEClient(app) as client:
        await client.message()
        beats = [await client.message(seconds=2) for _ in range(3)]
    assert [beat.comment for beat in beats] == ["keep-alive"] * 3


async def test_resume_after_last_event_id_replays_what_was_missed_then_goes_live(app, broker):
    ids = [await apublish("count", n) for n in range(6)]
    async with SSEClient(app, headers=[("Last-Event-ID", ids[2])]) as client:
        first = await client.message()
        replayed = await client.events(3)
        live_id = await apublish("count", 6)
        (live,) = await client.events(1)
    assert first.id == ids[2]
    assert [m.id for m in replayed] == ids[3:]
    assert [m.data for m in replayed] == ["3", "4", "5"]
    assert live.id == live_id
    assert client.pending() == []


async def test_last_event_id_may_come_from_the_query_string(app, broker):
    ids = [await apublish("count", n) for n in range(3)]
    async with SSEClient(app, path=f"/events/?last_event_id={ids[0]}") as client:
        replayed = await client.events(2)
    assert [m.id for m in replayed] == ids[1:]


async def test_resume_while_events_are_published_loses_and_repeats_nothing(app, broker):
    """Events published while a client reconnects arrive once each, in order."""
    ids = [await apublish("count", n) for n in range(10)]

    async def publish_more():
        for n in range(10, 40):
            ids.append(await apublish("count", n))
            await asyncio.sleep(0)

    publisher = asyncio.create_task(publish_more())
    async with SSEClient(app, headers=[("Last-Event-ID", ids[4])]) as client:
        await publisher
        received = await client.events(35)
        await asyncio.sleep(0.05)
        assert client.pending() == []
    assert [m.data for m in received] == [str(n) for n in range(5, 40)]
    assert [m.id for m in received] == ids[5:]


async def test_a_client_at_the_head_reconnecting_misses_nothing(app, broker):
    """The id of the first message is where a reconnect resumes, even with no events yet."""
    async with SSEClient(app) as client:
        start = (await client.message()).id
    published = [await apublish("while-away", n) for n in range(3)]
    async with SSEClient(app, headers=[("Last-Event-ID", start)]) as client:
        received = await client.events(3)
    assert [m.id for m in received] == published


async def test_an_id_older_than_retention_gets_reset(app, broker, sse_settings):
    ids = [await apublish("count", n) for n in range(sse_settings.SSE_RETENTION * 6)]
    async with SSEClient(app, headers=[("Last-Event-ID", ids[0])]) as client:
        await client.message()
        (reset,) = await client.events(1)
        live_id = await apublish("count", "live")
        (live,) = await client.events(1)
    assert reset.event == "reset"
    assert json.loads(reset.data) == {"reason": "expired"}
    assert reset.id == ids[-1]
    assert live.id == live_id


@pytest.mark.parametrize("last_event_id", ["nonsense", "1-2-3", "99999999999999-0"])
async def test_an_id_this_stream_never_had_gets_reset(app, broker, last_event_id):
    await apublish("count", 1)
    async with SSEClient(app, headers=[("Last-Event-ID", last_event_id)]) as client:
        await client.message()
        (reset,) = await client.events(1)
    assert reset.event == "reset"
    assert json.loads(reset.data) == {"reason": "unknown"}


async def test_a_slow_client_is_dropped_without_holding_back_the_others(app, broker, sse_settings):
    gate = asyncio.Event()  # the slow client's socket: closed until set
    burst = sse_settings.SSE_CLIENT_QUEUE_SIZE + 10
    async with SSEClient(app) as fast, SSEClient(app, gate=gate) as slow:
        await fast.message()
        await slow.message()
        received = []
        for n in range(burst):  # the slow client's send blocks on the first
            await apublish("count", n)
            received += await fast.events(1)
        assert [m.data for m in received] == [str(n) for n in range(burst)]
        assert len(broker.subscriptions) == 1  # the slow one is gone already
        gate.set()
        async with asyncio.timeout(5):
            await slow.ended.wait()  # its stream ended: EventSource reconnects
    # It got what it had taken before it stopped reading, and nothing after the drop.
    slow_data = [m.data for m in slow.pending() if m.data is not None]
    assert 1 <= len(slow_data) < burst
    assert slow_data == [str(n) for n in range(len(slow_data))]


async def test_disconnect_removes_the_subscription_and_every_task(app, broker):
    """200 clients come and go; nothing of them stays behind."""
    current = asyncio.current_task()
    for _ in range(200):
        async with SSEClient(app) as client:
            await client.message()
            assert len(broker.subscriptions) == 1
        assert client.task.done()
        assert broker.subscriptions == set()
    # A Redis reader is cancelled with the last subscription; let it finish.
    others = {task for task in asyncio.all_tasks() if task is not current}
    if others:
        await asyncio.wait(others, timeout=5)
    assert {task for task in asyncio.all_tasks() if not task.done()} == {current}


async def test_open_streams_share_one_thread(app, broker):
    """Django's own handler holds a thread per open stream; ours holds one for all."""

    async def threads_started_by_20_streams(handler) -> int:
        before = set(threading.enumerate())
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(20):
                client = await stack.enter_async_context(SSEClient(handler))
                await client.message()
            return len(set(threading.enumerate()) - before)

    assert await threads_started_by_20_streams(app) <= 1
    assert await threads_started_by_20_streams(ASGIHandler()) >= 20


async def test_publish_from_sync_code_reaches_open_streams(app, broker):
    async with SSEClient(app) as client:
        await client.message()
        event_id = await sync_to_async(publish)("from-sync", {"ok": True})
        (received,) = await client.events(1)
    assert (received.id, received.event, received.data) == (event_id, "from-sync", '{"ok":true}')


@pytest.mark.parametrize(
    ("name", "data", "problem"),
    [
        ("has space", 1, "event must be a name"),
        ("reset", 1, "reserved"),
        (None, 1, "event must be a name"),
        ("ok", {1, 2}, "data is not JSON"),
        ("ok", float("nan"), "data is not JSON"),
        ("ok", "x" * 70_000, "the limit is 65536"),
    ],
)
async def test_apublish_refuses_bad_events(broker, name, data, problem):
    with pytest.raises(InvalidEvent, match=problem):
        await apublish(name, data)
