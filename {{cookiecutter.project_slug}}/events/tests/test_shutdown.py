"""A server told to stop ends every open stream at once, with a complete response."""

import asyncio
import signal

import pytest

from events import shutdown
from events.tests.sse_client import SSEClient


async def test_end_streams_ends_open_and_new_streams(app, broker):
    async with SSEClient(app) as first, SSEClient(app) as second:
        await first.message()
        await second.message()
        broker.end_streams()
        async with asyncio.timeout(5):
            await first.ended.wait()
            await second.ended.wait()
        # The server accepts a few more requests before it stops listening:
        # those streams end right after their first message.
        async with SSEClient(app) as late:
            assert (await late.message()).retry is not None
            async with asyncio.timeout(5):
                await late.ended.wait()
    assert broker.subscriptions == set()


@pytest.fixture
def server_handler():
    """A stand-in for uvicorn's SIGTERM handler, restored after the test."""
    calls = []
    original = signal.signal(signal.SIGTERM, lambda signum, frame: calls.append(signum))
    shutdown._installed = False
    yield calls
    signal.signal(signal.SIGTERM, original)
    shutdown._installed = False


async def test_sigterm_ends_streams_then_runs_the_servers_handler(app, broker, server_handler):
    async with SSEClient(app) as client:  # a stream request installs the chained handler
        await client.message()
        signal.raise_signal(signal.SIGTERM)
        async with asyncio.timeout(5):
            await client.ended.wait()
    assert server_handler == [signal.SIGTERM]


def test_a_signal_nobody_handles_is_left_alone():
    original = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    shutdown._installed = False
    try:
        shutdown.end_streams_when_stopping()
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, original)
        shutdown._installed = False
