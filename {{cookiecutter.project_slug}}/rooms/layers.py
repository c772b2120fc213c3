"""channels_redis' RedisChannelLayer, made to survive a Redis restart and idle sockets.

Three changes to channels_redis 4.3:

- **A pool that waits.** channels_redis builds a plain redis-py ConnectionPool,
  which (redis-py 8) holds at most 100 connections and raises
  MaxConnectionsError for the next command. Every socket that closes runs a
  group_discard, so when a thousand clients left at once (a deploy, a network
  blip) most of those commands failed. A BlockingConnectionPool bounds the
  connections the same way, but a command waits up to its `timeout` for one.
- **A read timeout longer than the blocking pop.** An idle channel waits in
  `BZPOPMIN` for `brpop_timeout` (5 s) on the server; redis-py 8's default
  `socket_timeout` is 5 s too, so the client gave up first on nearly every
  idle round ("Timeout reading from Redis"), and once the retries ran out the
  socket waiting on that round was closed with 1011. The read timeout here is
  `brpop_timeout + READ_TIMEOUT_MARGIN` unless set, and refused if not longer.
- **Memberships that outlive Redis.** Group membership lives only in Redis: a
  Redis restarted without persistence (or flushed, or failed over) forgets it,
  and open sockets stay connected but never hear their room again. This layer
  also remembers the memberships of its own process, and a watcher task per
  process re-adds them when Redis has lost them (a sentinel key of the
  process's, checked every `watch_interval` seconds, is gone) and before
  channels_redis' `group_expiry` (a day) would drop them.
"""

import asyncio
import logging
import time
from collections import defaultdict

from channels_redis.core import RedisChannelLayer as ChannelsRedisLayer
from django.core.exceptions import ImproperlyConfigured
from redis.asyncio import BlockingConnectionPool

logger = logging.getLogger(__name__)

# How much longer than the server-side wait of BZPOPMIN a read may take.
READ_TIMEOUT_MARGIN = 5.0
# Seconds a process's sentinel key outlives its last check (a process that
# died leaves nothing behind for long); far longer than watch_interval.
SENTINEL_TTL = 60


class RedisChannelLayer(ChannelsRedisLayer):
    # Seconds between checks that Redis still holds this process's memberships.
    watch_interval = 2.0

    def __init__(self, *args, brpop_timeout: float | None = None, **kwargs):
        if brpop_timeout is not None:
            # Seconds an idle receive waits on the server per round (channels_redis: 5).
            self.brpop_timeout = brpop_timeout
        super().__init__(*args, **kwargs)
        for host in self.hosts:
            timeout = host.get("socket_timeout", self.brpop_timeout + READ_TIMEOUT_MARGIN)
            if timeout is not None and timeout <= self.brpop_timeout:
                raise ImproperlyConfigured(
                    f"CHANNEL_LAYERS socket_timeout ({timeout} s) must be longer than the "
                    f"layer's blocking receive ({self.brpop_timeout} s), or None"
                )
        # group -> channels of this process in it: what to put back into Redis.
        self.memberships: defaultdict[str, set[str]] = defaultdict(set)
        # Memberships are re-added this often so that group_expiry never drops them.
        self.refresh_interval = self.group_expiry / 2
        self._watcher: asyncio.Task | None = None

    def create_pool(self, index):
        host = dict(self.hosts[index])
        if "address" not in host:  # Sentinel: left to channels_redis
            return super().create_pool(index)
        host.setdefault("socket_timeout", self.brpop_timeout + READ_TIMEOUT_MARGIN)
        return BlockingConnectionPool.from_url(host.pop("address"), **host)

    async def group_add(self, group, channel):
        # Remembered first: if Redis fails halfway, the watcher puts it back.
        self.memberships[group].add(channel)
        self._watch()
        try:
            await super().group_add(group, channel)
        except BaseException:
            self._forget(group, channel)
            raise

    async def group_discard(self, group, channel):
        # Forgotten first, so that the watcher never re-adds a channel that left.
        self._forget(group, channel)
        await super().group_discard(group, channel)

    async def close_pools(self):
        await self.stop_watching()
        await super().close_pools()

    async def stop_watching(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None and not watcher.done():
            watcher.cancel()
            # A watcher of a loop that is gone cannot be awaited from this one.
            if watcher.get_loop() is asyncio.get_running_loop():
                await asyncio.gather(watcher, return_exceptions=True)

    def _forget(self, group: str, channel: str) -> None:
        members = self.memberships.get(group)
        if members is not None:
            members.discard(channel)
            if not members:
                del self.memberships[group]

    def _watch(self) -> None:
        """Start the watcher on the running loop unless one runs there already."""
        loop = asyncio.get_running_loop()
        if self._watcher is None or self._watcher.done() or self._watcher.get_loop() is not loop:
            self._watcher = loop.create_task(self._watch_memberships(), name="room-memberships")

    def _sentinel_key(self) -> str:
        # One per process (client_prefix is random per layer): another process
        # re-adding its own memberships must not hide that ours are gone.
        return f"{self.prefix}:memberships:{self.client_prefix}"

    async def _watch_memberships(self) -> None:
        """Every watch_interval seconds while this process has members: re-add them if needed.

        Ends when the last membership is discarded; group_add starts it again.
        A Redis that does not answer is logged once per outage, at WARNING.
        """
        refreshed = time.monotonic()
        restore = False  # the sentinel was seen missing and the memberships are not back yet
        failing, first = False, True
        while self.memberships:
            try:
                # SET ... GET answers the previous value: None when Redis lost the key
                # (or on this watcher's first round: the memberships are re-added then too,
                # in case Redis restarted between group_add and now).
                for index in range(self.ring_size):
                    previous = await self.connection(index).set(
                        self._sentinel_key(), 1, ex=SENTINEL_TTL, get=True
                    )
                    if previous is None:
                        if not restore and not first:
                            logger.warning(
                                "Redis lost this process's room memberships (restarted or "
                                "flushed): re-adding %d",
                                sum(len(members) for members in self.memberships.values()),
                            )
                        restore = True
                if restore or time.monotonic() - refreshed >= self.refresh_interval:
                    await self.readd_memberships()
                    refreshed = time.monotonic()
                    restore = False
                if failing:
                    logger.warning("Redis answers again; room memberships checked")
                failing = first = False
            except Exception as exc:
                if not failing:
                    logger.warning("Could not check room memberships in Redis (%r)", exc)
                failing = True
            await asyncio.sleep(self.watch_interval)

    async def readd_memberships(self) -> None:
        """Put every membership of this process back into Redis, with a fresh timestamp.

        One pipeline per shard: ZADD (which also renews the timestamp that
        group_expiry is counted from) and EXPIRE per group.
        """
        now = time.time()
        by_shard: defaultdict[int, list[tuple[str, set[str]]]] = defaultdict(list)
        for group, members in list(self.memberships.items()):
            by_shard[self.consistent_hash(group)].append((group, set(members)))
        for index, groups in by_shard.items():
            pipe = self.connection(index).pipeline(transaction=False)
            for group, members in groups:
                key = self._group_key(group)
                pipe.zadd(key, dict.fromkeys(members, now))
                pipe.expire(key, self.group_expiry)
            await pipe.execute()
            # A channel that left while the pipeline ran was just put back: take it out.
            for group, members in groups:
                if left := members - self.memberships.get(group, set()):
                    await self.connection(index).zrem(self._group_key(group), *left)
