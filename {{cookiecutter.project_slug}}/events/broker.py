"""Where published events go, and how each open stream receives them.

A broker keeps the last SSE_RETENTION events, so that a client reconnecting
with Last-Event-ID first gets what it missed, and fans every new event out to
the streams open in this process. Each stream owns a bounded queue: a client
that falls a whole queue behind is dropped (it reconnects and resumes from its
last id) instead of slowing the others down or growing memory without bound.

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

logger = logging.getLogger(__name__)

EVENT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
# Both brokers number events "<milliseconds>-<sequence>", like Redis Stream ids.
EVENT_ID = re.compile(r"(\d{1,20})-(\d{1,20})")
# Sent by the stream itself; a published event may not pose as one.
RESERVED_NAMES = frozenset({"reset"})


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


def position(event_id: str) -> tuple[int, int] | None:
    """An event id as a comparable pair, or None when it is not an event id."""
    match = EVENT_ID.fullmatch(event_id)
    return (int(match[1]), int(match[2])) if match else None


def encode(name, data) -> str:
    """Validate an event and return its data as compact JSON; raise InvalidEvent."""
    if not isinstance(name, str) or not EVENT_NAME.fullmatch(name):
        raise InvalidEvent(
            "event must be a name of at most 64 letters, digits, '_', '.' or '-', "
            "starting with a letter or '_'"
        )
    if name in RESERVED_NAMES:
        raise InvalidEvent(f"event name {name!r} is reserved")
    try:
        # Compact JSON escapes newlines, so the data is always one `data:` line.
        encoded = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidEvent(f"data is not JSON: {exc}") from exc
    size = len(encoded.encode())
    if size > settings.SSE_MAX_DATA_BYTES:
        raise InvalidEvent(
            f"data is {size} bytes as JSON; the limit is {settings.SSE_MAX_DATA_BYTES}"
        )
    return encoded


class Subscription:
    """One open stream: the events it missed, then live ones, in order, once each."""

    def __init__(self, queue_size: int):
        self.start = ""  # the id the stream resumes after
        self.missed: deque[Event | Reset] = deque()
        self.dropped = False
        self._queue: asyncio.Queue[Event | Reset | None] = asyncio.Queue(queue_size)
        self._last: tuple[int, int] = (0, 0)

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
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)  # wakes the stream so it ends now

    async def next_batch(self, limit: int = 64) -> list[Event | Reset]:
        """Wait for the next items; an empty list once the subscription is dropped."""
        batch: list[Event | Reset] = []
        while not batch:
            if self.missed:
                candidates = [self.missed.popleft() for _ in range(min(limit, len(self.missed)))]
            else:
                first = await self._queue.get()
                candidates = [first]
                while len(candidates) < limit and not self._queue.empty():
                    candidates.append(self._queue.get_nowait())
            for item in candidates:
                if item is None:
                    return []
                here = position(item.id)
                # Live events may repeat the tail of what was replayed: skip those.
                if isinstance(item, Event) and here <= self._last:
                    continue
                self._last = here
                batch.append(item)
        return batch


class Broker:
    """Store events for replay and fan them out to this process's subscriptions."""

    def __init__(self):
        self.loop = asyncio.get_running_loop()
        self.retention: int = settings.SSE_RETENTION
        self.queue_size: int = settings.SSE_CLIENT_QUEUE_SIZE
        self.subscriptions: set[Subscription] = set()
        self.stopping = False

    async def publish(self, name: str, data: str) -> str:
        """Store an event whose data is already encoded; return its id."""
        raise NotImplementedError

    async def replay(self, last_event_id: str | None) -> tuple[str, list[Event | Reset]]:
        """Where a client at last_event_id resumes from, and what it missed."""
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
        subscription = Subscription(self.queue_size)
        if self.stopping:
            subscription.end()
        # Subscribed before the replay is read: an event published in between
        # arrives in both and is delivered once.
        self.subscriptions.add(subscription)
        try:
            await self.prepare()
            subscription.start, missed = await self.replay(last_event_id)
            subscription.missed.extend(missed)
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

    async def replay(self, last_event_id: str | None) -> tuple[str, list[Event | Reset]]:
        if last_event_id is None:
            return self.head, []
        resume = position(last_event_id)
        if resume is None or resume[0] != self.epoch or resume[1] > self.sequence:
            return self.head, [Reset(self.head, "unknown")]
        oldest = self.events[0] if self.events else None
        if oldest and resume[1] < position(oldest.id)[1] - 1:
            return self.head, [Reset(self.head, "expired")]
        return last_event_id, [event for event in self.events if position(event.id) > resume]


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
