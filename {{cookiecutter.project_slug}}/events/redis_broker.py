"""Events in a Redis Stream, shared by every process and host.

Publishing is one XADD with an approximate MAXLEN (Redis trims whole nodes,
so a little more than SSE_RETENTION is kept), run in a small script that also
stores the id of the entry before it: a replay can then tell exactly whether
anything after a client's last id was trimmed. Each process runs ONE reader
task, only while it has subscribers, that blocks on XREAD and fans events out
to its own streams: one Redis connection per process, never one per client.
A stream (not pub/sub) keeps events while a client is away, so a reconnect
with Last-Event-ID replays them, one XRANGE ... COUNT page at a time.
"""

import asyncio
import functools
import logging

import redis
import redis.asyncio
import redis.asyncio.retry
import redis.retry
from django.conf import settings
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import RedisError, ResponseError

from events.broker import Broker, BrokerUnavailable, Event, Replay, Reset, format_id, position

logger = logging.getLogger(__name__)

CONNECTION = {
    "decode_responses": True,
    "socket_connect_timeout": 2,
    # Longer than the reader's XREAD block, so a blocked read never times out.
    "socket_timeout": 10,
    "health_check_interval": 30,
}
# Per process: the reader, plus publishes and replays in flight; more wait their turn.
MAX_CONNECTIONS = 8
# After a Redis restart every pooled connection is dead: a command retries on
# a fresh one instead of failing.
RETRY_BACKOFF = ExponentialWithJitterBackoff(base=0.05, cap=1.0)
RETRIES = 3
READ_BLOCK_MILLISECONDS = 5000
READ_BATCH = 500
EMPTY_STREAM = "0-0"
# KEYS[1]: the stream; ARGV: retention, event name, data. Atomic, so `prev` is
# exactly the entry before this one.
PUBLISH = """
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local prev = last[1] and last[1][1] or '0-0'
return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
                  'event', ARGV[2], 'data', ARGV[3], 'prev', prev)
"""


class RedisBroker(Broker):
    def __init__(self):
        super().__init__()
        self.key: str = settings.SSE_STREAM_KEY
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            settings.REDIS_URL,
            max_connections=MAX_CONNECTIONS,
            timeout=5,
            retry=redis.asyncio.retry.Retry(RETRY_BACKOFF, RETRIES),
            **CONNECTION,
        )
        self.redis = redis.asyncio.Redis.from_pool(pool)
        self._publish = self.redis.register_script(PUBLISH)
        self._reader: asyncio.Task | None = None
        self._reading: asyncio.Future[None] | None = None

    async def publish(self, name: str, data: str) -> str:
        try:
            return await self._publish(keys=[self.key], args=[self.retention, name, data])
        except RedisError as exc:
            raise BrokerUnavailable(str(exc)) from exc

    @classmethod
    def publish_from_sync(cls, name: str, data: str) -> str:
        """One XADD on a sync connection: no event loop needed (management commands)."""
        try:
            return _sync_publish()(
                keys=[settings.SSE_STREAM_KEY], args=[settings.SSE_RETENTION, name, data]
            )
        except RedisError as exc:
            raise BrokerUnavailable(str(exc)) from exc

    async def resume(self, last_event_id: str | None) -> tuple[str, Reset | Replay | None]:
        try:
            # One transaction: both ends of the stream at the same moment.
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.xrange(self.key, count=1)
                pipe.xrevrange(self.key, count=1)
                first, last = await pipe.execute()
        except RedisError as exc:
            raise BrokerUnavailable(str(exc)) from exc
        head = last[0][0] if last else EMPTY_STREAM
        if last_event_id is None:
            return head, None
        # Checked here, so that what a client sends never reaches Redis unless
        # it is an id Redis accepts, and never turns into a broker error.
        resume = position(last_event_id)
        if resume is None or resume > position(head):
            return head, Reset(head, "unknown")
        # Trimming removes the oldest entries: the client missed some if it is
        # behind the entry just before the oldest one kept.
        if first and resume < position(first[0][1]["prev"]):
            return head, Reset(head, "expired")
        if resume == position(head):
            return format_id(resume), None
        return format_id(resume), Replay(resume, position(head))

    async def page(self, replay: Replay) -> list[Event] | Reset:
        # Up to "+" rather than replay.until: if everything up to `until` was
        # trimmed meanwhile, the first newer entry still shows the gap.
        try:
            entries = await self.redis.xrange(
                self.key, min=f"({format_id(replay.after)}", count=self.page_size
            )
        except ResponseError as exc:
            if not _refuses_the_id(exc):
                raise BrokerUnavailable(str(exc)) from exc
            # position() keeps ids within Redis's range, so only an id nothing
            # can follow (2**64-1 - 2**64-1) gets here: the client starts over,
            # and it is no outage.
            logger.info("SSE replay: Redis refused a stream id (%s)", exc)
            return Reset(replay.reset_id, "unknown")
        except RedisError as exc:
            raise BrokerUnavailable(str(exc)) from exc
        # Each entry names the one before it: a `prev` past `after` was trimmed.
        if entries and position(entries[0][1]["prev"]) > replay.after:
            return Reset(replay.reset_id, "expired")
        return [
            Event(entry_id, fields["event"], fields["data"])
            for entry_id, fields in entries
            if position(entry_id) <= replay.until
        ]

    async def prepare(self) -> None:
        if self._reader is None:
            self._reading = self.loop.create_future()
            self._reader = asyncio.create_task(self._read(self._reading), name="sse-redis-reader")
        # Replays are read after the reader's starting point is fixed: together
        # they cover every event.
        await asyncio.shield(self._reading)

    def stopped(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            self._reading.cancel()  # a no-op once the reader has started
            self._reader = self._reading = None

    async def _read(self, reading: asyncio.Future[None]) -> None:
        try:
            last = await self._head()
        except RedisError as exc:
            reading.set_exception(BrokerUnavailable(str(exc)))
            self._reader = self._reading = None
            return
        reading.set_result(None)
        backoff = ExponentialWithJitterBackoff(base=0.1, cap=5.0)
        failures = 0
        while True:
            try:
                response = await self.redis.xread(
                    {self.key: last}, count=READ_BATCH, block=READ_BLOCK_MILLISECONDS
                )
            except RedisError as exc:
                failures += 1
                delay = backoff.compute(failures)
                logger.warning("SSE reader: Redis unavailable (%s); retry in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                continue
            if failures:
                logger.info("SSE reader: Redis is back after %d failed reads", failures)
                failures = 0
            for _key, entries in response:
                for entry_id, fields in entries:
                    self.fan_out(Event(entry_id, fields["event"], fields["data"]))
                    last = entry_id

    async def _head(self) -> str:
        last = await self.redis.xrevrange(self.key, count=1)
        return last[0][0] if last else EMPTY_STREAM

    async def aclose(self) -> None:
        reader = self._reader
        self.stopped()
        if reader is not None:
            await asyncio.gather(reader, return_exceptions=True)
        await self.redis.aclose()


def _refuses_the_id(exc: ResponseError) -> bool:
    """Whether this is Redis refusing a stream id rather than failing.

    Redis says "Invalid stream ID specified as stream command argument" or
    "invalid start ID for the interval".
    """
    message = str(exc).lower()
    return "invalid" in message and " id " in message


@functools.cache
def _sync_publish():
    """The publish script on a sync client; its connection pool is thread-safe."""
    retry = redis.retry.Retry(RETRY_BACKOFF, RETRIES)
    client = redis.Redis.from_url(settings.REDIS_URL, retry=retry, **CONNECTION)
    return client.register_script(PUBLISH)


async def check() -> None:
    """Readiness: Redis answers PING."""
    client = redis.asyncio.Redis.from_url(settings.REDIS_URL, **CONNECTION)
    try:
        await client.ping()
    finally:
        await client.aclose()
