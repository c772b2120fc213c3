"""GET /events/ through the real ASGI handler, against the configured broker."""

import asyncio
import contextlib
import json
import logging
import threading

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler

from core.client_json import MAX_DEPTH
from core.testing import asgi_request
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


@pytest.mark.parametrize(
    "last_event_id",
    [
        "nonsense",
        "1-2-3",
        "99999999999999-0",
        # Past the two unsigned 64-bit integers of a Redis Stream id: Redis refuses them.
        "99999999999999999999-0",
        "18446744073709551616-0",
        "0-18446744073709551616",
        # The largest id there is: after the newest event of any stream.
        "18446744073709551615-18446744073709551615",
        "-1-0",
        "+",
    ],
)
async def test_an_id_this_stream_never_had_gets_reset(app, broker, caplog, last_event_id):
    """A client's bad id is never an outage: a reset, the stream goes on, nothing is logged."""
    head = await apublish("count", 1)
    async with SSEClient(app, headers=[("Last-Event-ID", last_event_id)]) as client:
        first = await client.message()
        (reset,) = await client.events(1)
        live_id = await apublish("count", 2)
        (live,) = await client.events(1)
    assert (first.id, reset.id, reset.event) == (head, head, "reset")
    assert json.loads(reset.data) == {"reason": "unknown"}
    assert live.id == live_id
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_an_id_in_other_digits_gets_reset(app, broker, caplog):
    """`\\d` and int() accept Arabic-Indic digits; Redis does not: they are not an id."""
    await apublish("count", 1)
    async with SSEClient(app, path="/events/?last_event_id=%D9%A1-%D9%A1") as client:
        await client.message()
        (reset,) = await client.events(1)
    assert json.loads(reset.data) == {"reason": "unknown"}
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_the_first_id_is_never_the_clients_text(app, broker):
    """The stream's first id is the broker's own spelling of where it resumes."""
    ids = [await apublish("count", n) for n in range(2)]
    padded = "000" + ids[0]
    async with SSEClient(app, headers=[("Last-Event-ID", padded)]) as client:
        first = await client.message()
        (replayed,) = await client.events(1)
    assert (first.id, replayed.id) == (ids[0], ids[1])


async def test_too_many_query_fields_is_a_400_not_an_error_log(app, broker, caplog):
    query = "&".join(f"f{n}=1" for n in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
    response = await asgi_request(app, path=f"/events/?{query}")
    assert response.status == 400
    assert json.loads(response.body) == {"detail": "The query string has too many fields."}
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_head_answers_like_get_without_subscribing(app, broker, monkeypatch):
    subscribed = []
    monkeypatch.setattr(broker, "subscribe", lambda *args: subscribed.append(args))
    response = await asgi_request(app, method="HEAD", path="/events/")
    assert response.status == 200
    assert response.body == b""
    assert subscribed == []
    monkeypatch.undo()
    async with SSEClient(app) as client:
        await client.message()
    for header in ("content-type", "cache-control", "x-accel-buffering"):
        assert response.headers[header] == client.headers[header]


@pytest.fixture
def long_retention(sse_settings):
    """300 events kept, and room for as many in a stream's queue; before the broker is made."""
    sse_settings.SSE_RETENTION = 300
    sse_settings.SSE_CLIENT_QUEUE_SIZE = 300


async def test_a_replay_is_held_one_page_at_a_time(app, long_retention, broker):
    """A client resuming from the oldest id of a long retention holds one page, not all of it."""
    ids = [await apublish("count", n) for n in range(300)]
    gate = asyncio.Event()  # the client stops reading after the first message
    async with SSEClient(app, headers=[("Last-Event-ID", ids[0])], gate=gate) as client:
        async with asyncio.timeout(5):
            await client.blocked.wait()  # the first batch is being sent
        (subscription,) = broker.subscriptions
        assert len(subscription.missed) <= broker.page_size < 299
        gate.set()
        received = await client.events(299)
    assert [m.id for m in received] == ids[1:]


async def test_pages_of_a_replay_and_live_events_arrive_once_each_in_order(
    app, long_retention, broker, monkeypatch
):
    broker.page_size = 7
    ids = [await apublish("count", n) for n in range(200)]
    pages = []

    async def page(replay):
        pages.append(await read_page(replay))
        return pages[-1]

    read_page = broker.page
    monkeypatch.setattr(broker, "page", page)

    async def publish_more():
        for n in range(200, 260):
            ids.append(await apublish("count", n))
            await asyncio.sleep(0)

    publisher = asyncio.create_task(publish_more())
    async with SSEClient(app, headers=[("Last-Event-ID", ids[10])]) as client:
        received = await client.events(249)
        await publisher
        await asyncio.sleep(0.05)
        assert client.pending() == []
    assert [m.data for m in received] == [str(n) for n in range(11, 260)]
    assert [m.id for m in received] == ids[11:]
    assert len(pages) >= (200 - 11) // 7
    assert max(len(page) for page in pages) <= 7


async def test_events_trimmed_during_a_paged_replay_give_a_reset(app, broker, sse_settings):
    """A client that reads its replay slower than events are trimmed gets a reset, not a gap."""
    retention = sse_settings.SSE_RETENTION
    broker.queue_size = 10 * retention  # so that the slow client is not dropped
    broker.page_size = 5
    ids = [await apublish("count", n) for n in range(retention)]
    gate = asyncio.Event()
    async with SSEClient(app, headers=[("Last-Event-ID", ids[0])], gate=gate) as client:
        async with asyncio.timeout(5):
            await client.blocked.wait()  # the first page is being sent
        # Far more than the retention: the rest of the replay is trimmed (Redis
        # trims whole nodes, so the margin is wide).
        live = [await apublish("count", "live") for _ in range(6 * retention)]
        gate.set()
        replayed = await client.events(5)
        (reset,) = await client.events(1)
        after_reset = await client.events(len(live))
    assert [m.id for m in replayed] == ids[1:6]
    assert (reset.event, json.loads(reset.data)) == ("reset", {"reason": "expired"})
    assert reset.id == ids[-1]  # the head when the stream opened: live events follow
    assert [m.id for m in after_reset] == live


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


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("name", "data", "problem"),
    [
        ("has space", 1, "event must be a name"),
        ("reset", 1, "reserved"),
        (None, 1, "event must be a name"),
        ("ok", {1, 2}, "data is not JSON"),
        ("ok", float("nan"), "data is not JSON"),
        ("ok", "x" * 70_000, "the limit is 65536"),
        ("ok", "\ud800", "lone surrogate"),
        ("ok", nested(5000), "data is not JSON"),
        # A client may not publish this either (core.client_json), on any Python.
        ("ok", nested(MAX_DEPTH), f"nested deeper than {MAX_DEPTH} levels"),
    ],
)
async def test_apublish_refuses_bad_events(broker, name, data, problem):
    with pytest.raises(InvalidEvent, match=problem):
        await apublish(name, data)


async def test_apublish_takes_data_as_deep_as_a_client_may_send(broker):
    assert await apublish("deep", nested(MAX_DEPTH - 1))
