"""Readiness: the Redis channel layer carries a message to a fresh channel and back."""

from channels.layers import get_channel_layer


async def channel_layer() -> None:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "readiness.ping"})
    await layer.receive(channel)
