"""What only the memory broker does: exact retention, epochs, in-process publishing."""

import json

import pytest

from events.broker import BrokerUnavailable, MemoryBroker, apublish, publish
from events.tests.sse_client import SSEClient


async def test_retention_is_exact(app, broker, sse_settings):
    retention = sse_settings.SSE_RETENTION
    ids = [await apublish("count", n) for n in range(retention + 10)]
    # ids[10:] are kept: a client at ids[9] missed nothing, one at ids[8] missed ids[9].
    async with SSEClient(app, headers=[("Last-Event-ID", ids[9])]) as client:
        assert [m.id for m in await client.events(retention)] == ids[10:]
    async with SSEClient(app, headers=[("Last-Event-ID", ids[8])]) as client:
        (reset,) = await client.events(1)
    assert (reset.event, json.loads(reset.data)) == ("reset", {"reason": "expired"})


async def test_ids_from_a_previous_process_are_unknown(broker):
    await apublish("count", 1)
    restarted = MemoryBroker()
    restarted.epoch += 1
    start, reset = await restarted.resume(broker.head)
    assert (reset.reason, start) == ("unknown", restarted.head)


def test_sync_publish_outside_a_server_is_refused():
    """A management command has no server loop: its events would reach no stream."""
    with pytest.raises(BrokerUnavailable, match="only reaches streams served by this process"):
        publish("lost", 1)
