"""Where published events go, and how each open stream receives them.

A broker keeps the last SSE_RETENTION events, so that a client reconnecting
with Last-Event-ID first gets what it missed, and fans every new event out to
the streams open in this process. What a client missed is read and sent a page
at a time, so a stream holds at most one page of it whatever the retention and
the size of events. Each stream owns a bounded queue: a client that falls a
whole queue behind is dropped (it reconnects and resumes from its last id)
instead of slowing the others down or growing memory without bound.

MemoryBroker keeps everything inside one process: one worker, development,
tests. RedisBroker (events/redis_broker.py, when the project uses Redis)
shares one Redis Stream between every process and host.
"""

import asyncio
import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from asgiref.sync import async_to_sync
from django.conf import settings
from django.utils.module_loading import import_string

from core.client_json import MAX_DEPTH

logger = logging.getLogger(__name__)

EVENT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
# Both brokers number events "<milliseconds>-<sequence>", like Redis Stream ids:
# two unsigned 64-bit integers, in ASCII digits (`\d` would also match other
# scripts' digits, which int() accepts and Redis refuses).
EVENT_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")
MAX_ID_PART = 2**64 - 1
# Sent by the stream itself; a published event may not pose as one.
RESERVED_NAMES = frozenset({"reset"})
# A replay is read a page at a time: at most this many events, and no more
# than REPLAY_PAGE_BYTES of data when every event is as large as allowed.
REPLAY_PAGE_EVENTS = 100
REPLAY_PAGE_BYTES = 1024 * 1024
# One chunk written to a client: at most this many events, and it stops
# growing once it holds this much data.
BATCH_EVENTS = 64
BATCH_BYTES = 64 * 1024


class InvalidEvent(ValueError):
    """The event name or data cannot be published; the message says why."""


class BrokerUnavailable(RuntimeError):
    """The broker cannot be reached; nothing was published."""


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    name: str
    data: str  # the published value, encoded as one line of JSON


@dataclass(frozen=True, slots=True)
class Reset:
    """The client's Last-Event-ID cannot be resumed from: it must reload its state."""

    id: str  # where the stream goes on from
    reason: str  # "expired": older than retention; "unknown": not an id of this stream


@dataclass(slots=True)
class Replay:
    """What a resuming client missed: the events after `after`, up to `until`, read in pages."""

    after: tuple[int, int]  # the last position read; moves on with each page
    until: tuple[int, int]  # the head when the stream opened: live events go on from there

    @property
    def reset_id(self) -> str:
        return format_id(self.until)


def position(event_id: str) -> tuple[int, int] | None:
    """An event id as a comparable pair, or None when it is not an event id.

    Both parts must be ASCII digits and at most 2**64 - 1, the range of a
    Redis Stream id: anything else a client sends is "not an id", never a
    broker error.
    """
    match = EVENT_ID.fullmatch(event_id)
    if match is None:
        return None
    here = (int(match[1]), int(match[2]))
    return here if max(here) <= MAX_ID_PART else None


def format_id(here: tuple[int, int]) -> str:
    """The id of a position: `format_id(position(x))` is x without leading zeros."""
    return f"{here[0]}-{here[1]}"


def too_deep(data) -> bool:
    """Whether lists and dicts nest deeper in `data` than a client may send (core.client_json).

    Checked here, not left to json.dumps' RecursionError: where that comes
    depends on the Python version and the stack already in use.
    """
    pending = [(data, 0)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            value = value.values()
        elif not isinstance(value, list | tuple):
            continue
        if depth >= MAX_DEPTH:
            return True
        pending.extend((item, depth + 1) for item in value)
    return False


def encode(name, data) -> str:
    """Validate an event and return its data as compact JSON; raise InvalidEvent."""
    if not isinstance(name, str) or not EVENT_NAME.fullmatch(name):
        raise InvalidEvent(
            "event must be a name of at most 64 letters, digits, '_', '.' or '-', "
            "starting with a letter or '_'"
        )
    if name in RESERVED_NAMES:
        raise InvalidEvent(f"event name {name!r} is reserved")
    if too_deep(data):
        raise InvalidEvent(f"data is not JSON: nested deeper than {MAX_DEPTH} levels")
    try:
        # Compact JSON escapes newlines, so the data is always one `data:` line.
        encoded = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        size = len(encoded.encode())
    except UnicodeEncodeError as exc:
        raise InvalidEvent("data holds a lone surrogate, which UTF-8 cannot encode") from exc
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidEvent(f"data is not JSON: {exc}") from exc
    if size > settings.SSE_MAX_DATA_BYTES:
        raise InvalidEvent(
            f"data is {size} bytes as JSON; the limit is {settings.SSE_MAX_DATA_BYTES}"
        )
    return encoded


class Subscription:
    """One open stream: the events it missed, then live ones, in order, once each."""

    def __init__(self, broker: "Broker"):
        self.broker = broker
        self.start = ""  # the id the stream resumes after
        self.replay: Replay | None = None  # what is still to be read of what it missed
        self.missed: deque[Event | Reset] = deque()  # the page being sent: one at most
        self.dropped = False
        self._ended = False
        self._queue: asyncio.Queue[Event | Reset | None] = asyncio.Queue(broker.queue_size)
        self._last: tuple[int, int] = (0, 0)

    def begin(self, start: str, how: Reset | Replay | None) -> None:
        """Start after `start` (an id of this broker), with a reset or a replay first if any."""
        self.start = start
        # Live events up to the start are what the client has already, or what
        # the replay (or the reset) stands for: they are skipped.
        self._last = position(start)
        if isinstance(how, Reset):
            self.missed.append(how)
        else:
            self.replay = how

    def offer(self, item: Event | Reset) -> bool:
        """Queue a live item without waiting; False (and dropped) when the queue is full."""
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped = True
            self.end()
            return False
        return True

    def end(self) -> None:
        """End the stream now; what is queued is never sent: the client resumes from its last id."""
        self._ended = True
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)  # wakes the stream so it ends now

    async def next_batch(self) -> list[Event | Reset]:
        """Wait for the next items to send; an empty list once the subscription has ended.

        A batch holds at most BATCH_EVENTS items, and stops growing once it
        holds BATCH_BYTES of data. Raises BrokerUnavailable when a page of the
        replay cannot be read.
        """
        batch: list[Event | Reset] = []
        size = 0
        while len(batch) < BATCH_EVENTS and size < BATCH_BYTES:
            if self._ended:
                return []
            if self.replay is not None and not self.missed:
                if batch:  # send this page before reading the next
                    break
                await self._read_page()
                continue
            if self.missed:
                item = self.missed.popleft()
            elif not batch:
                item = await self._queue.get()
            elif not self._queue.empty():
                item = self._queue.get_nowait()
            else:
                break
            if item is None:
                return []
            here = position(item.id)
            # Live events may repeat what the replay sent: skip those.
            if isinstance(item, Event) and here <= self._last:
                continue
            self._last = here
            batch.append(item)
            if isinstance(item, Event):
                size += len(item.data)
        return batch

    async def _read_page(self) -> None:
        """Read the next page of the replay into `missed`; the last page ends the replay."""
        replay = self.replay
        page = await self.broker.page(replay)
        if isinstance(page, Reset):  # trimmed while this stream was replaying
            self.replay = None
            self.missed.append(page)
            return
        if page:
            self.missed.extend(page)
            replay.after = position(page[-1].id)
        if not page or replay.after >= replay.until:
            self.replay = None


class Broker:
    """Store events for replay and fan them out to this process's subscriptions."""

    def __init__(self):
        self.loop = asyncio.get_running_loop()
        self.retention: int = settings.SSE_RETENTION
        self.queue_size: int = settings.SSE_CLIENT_QUEUE_SIZE
        # Events per replay page: REPLAY_PAGE_BYTES of the largest allowed events, at least one.
        self.page_size: int = max(
            1, min(REPLAY_PAGE_EVENTS, REPLAY_PAGE_BYTES // max(1, settings.SSE_MAX_DATA_BYTES))
        )
        self.subscriptions: set[Subscription] = set()
        self.stopping = False

    async def publish(self, name: str, data: str) -> str:
        """Store an event whose data is already encoded; return its id."""
        raise NotImplementedError

    async def resume(self, last_event_id: str | None) -> tuple[str, Reset | Replay | None]:
        """Where a client at last_event_id resumes from, and how.

        Returns the stream's first id and a Reset (the client cannot resume:
        `unknown` for anything that is not an id of this stream, `expired`
        when events after it were trimmed), a Replay of what it missed, or
        None when it missed nothing. Raises BrokerUnavailable when the broker
        cannot be reached, never for what the client sent.
        """
        raise NotImplementedError

    async def page(self, replay: Replay) -> list[Event] | Reset:
        """The next page of a replay: the events after replay.after, at most page_size.

        None after replay.until (live events carry on from there); an empty
        list when the replay is complete; a Reset (`expired`, at
        replay.reset_id) when events it still had to send were trimmed while
        the client read the earlier pages. Raises BrokerUnavailable.
        """
        raise NotImplementedError

    async def prepare(self) -> None:
        """Called before each subscription reads its replay."""

    def stopped(self) -> None:
        """Called when the last subscription ends; must not wait."""

    async def aclose(self) -> None:
        """Release what the broker holds (connections, tasks)."""

    @classmethod
    def publish_from_sync(cls, name: str, data: str) -> str:
        """Publish from sync code; under an ASGI server this runs on its event loop."""
        return async_to_sync(_publish_encoded)(name, data)

    @asynccontextmanager
    async def subscribe(self, last_event_id: str | None) -> AsyncIterator[Subscription]:
        subscription = Subscription(self)
        if self.stopping:
            subscription.end()
        # Subscribed before the replay is read: an event published in between
        # arrives in both and is delivered once.
        self.subscriptions.add(subscription)
        try:
            await self.prepare()
            subscription.begin(*await self.resume(last_event_id))
            yield subscription
        finally:
            self.subscriptions.discard(subscription)
            if not self.subscriptions:
                self.stopped()

    def end_streams(self) -> None:
        """The server is stopping: end every open stream, and each one opened from now on."""
        self.stopping = True
        for subscription in self.subscriptions:
            subscription.end()

    def fan_out(self, item: Event | Reset) -> None:
        for subscription in list(self.subscriptions):
            if not subscription.offer(item):
                self.subscriptions.discard(subscription)
                logger.warning("Dropped an SSE client that fell %d events behind", self.queue_size)
        if not self.subscriptions:
            self.stopped()


class MemoryBroker(Broker):
    """Events live in this process: a ring buffer of the last SSE_RETENTION."""

    def __init__(self):
        super().__init__()
        # A restarted process starts a new epoch, so ids from before it are "unknown".
        self.epoch = time.time_ns() // 1_000_000
        self.sequence = 0
        self.events: deque[Event] = deque(maxlen=self.retention)

    @property
    def head(self) -> str:
        return f"{self.epoch}-{self.sequence}"

    @classmethod
    def publish_from_sync(cls, name: str, data: str) -> str:
        # Under an ASGI server sync code runs on worker threads and the loop on
        # the main thread. On the main thread there is no server loop in this
        # process (a management command, a script): no stream would ever see it.
        if threading.current_thread() is threading.main_thread():
            raise BrokerUnavailable(
                "The memory broker only reaches streams served by this process; "
                "publish from a request or use the Redis broker."
            )
        return super().publish_from_sync(name, data)

    async def publish(self, name: str, data: str) -> str:
        self.sequence += 1
        event = Event(self.head, name, data)
        self.events.append(event)
        self.fan_out(event)
        return event.id

    @property
    def oldest_sequence(self) -> int:
        """The sequence of the oldest event kept (one past the newest when none is)."""
        return position(self.events[0].id)[1] if self.events else self.sequence + 1

    async def resume(self, last_event_id: str | None) -> tuple[str, Reset | Replay | None]:
        if last_event_id is None:
            return self.head, None
        resume = position(last_event_id)
        if resume is None or resume[0] != self.epoch or resume[1] > self.sequence:
            return self.head, Reset(self.head, "unknown")
        if resume[1] < self.oldest_sequence - 1:
            return self.head, Reset(self.head, "expired")
        if resume[1] == self.sequence:
            return format_id(resume), None
        return format_id(resume), Replay(resume, (self.epoch, self.sequence))

    async def page(self, replay: Replay) -> list[Event] | Reset:
        # Sequences have no gaps: the event after `after` is at this index of the ring.
        index = replay.after[1] + 1 - self.oldest_sequence
        if index < 0:
            return Reset(replay.reset_id, "expired")
        stop = min(index + self.page_size, len(self.events))
        page = [self.events[i] for i in range(index, stop)]
        return [event for event in page if position(event.id) <= replay.until]


_broker: Broker | None = None


def get_broker() -> Broker:
    """The broker of the running event loop, made from settings.SSE_BROKER on first use."""
    global _broker
    loop = asyncio.get_running_loop()
    # Queues and connections belong to one loop; a new loop (each test has its
    # own) gets a new broker.
    if _broker is None or _broker.loop is not loop:
        _broker = import_string(settings.SSE_BROKER)()
    return _broker


def running_broker() -> Broker | None:
    """The broker made by get_broker() last, if any."""
    return _broker


async def aclose_broker() -> None:
    global _broker
    broker, _broker = _broker, None
    if broker is not None:
        await broker.aclose()


async def _publish_encoded(name: str, data: str) -> str:
    return await get_broker().publish(name, data)


async def apublish(event: str, data) -> str:
    """Publish `data` (anything JSON can encode) as `event`; return the event id.

    Raises InvalidEvent for a bad name or data, BrokerUnavailable when the
    broker cannot be reached.
    """
    return await _publish_encoded(event, encode(event, data))


def publish(event: str, data) -> str:
    """Sync twin of apublish, for sync views, signals and management commands."""
    return import_string(settings.SSE_BROKER).publish_from_sync(event, encode(event, data))
