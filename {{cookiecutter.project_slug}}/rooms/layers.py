"""channels_redis' RedisChannelLayer, whose connection pool waits instead of failing.

channels_redis builds a plain redis-py ConnectionPool, which (redis-py 8)
holds at most 100 connections and raises MaxConnectionsError for the next
command. Every socket that closes runs a group_discard, so when a thousand
clients left at once (a deploy, a network blip) most of those commands failed.
A BlockingConnectionPool bounds the connections the same way, but a command
waits up to its `timeout` for a free one.
"""

from channels_redis.core import RedisChannelLayer as ChannelsRedisLayer
from redis.asyncio import BlockingConnectionPool


class RedisChannelLayer(ChannelsRedisLayer):
    def create_pool(self, index):
        host = dict(self.hosts[index])
        if "address" not in host:  # Sentinel: left to channels_redis
            return super().create_pool(index)
        return BlockingConnectionPool.from_url(host.pop("address"), **host)
