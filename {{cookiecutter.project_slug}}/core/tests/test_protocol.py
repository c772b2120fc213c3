"""core.protocol against uvicorn's own HTTP protocol, over a fake transport.

These fail if uvicorn changes what core/protocol.py relies on (the httptools
implementation's `pipeline`, `_start_asgi_task` and a request cycle's
`disconnected`, `response_complete` and `message_event`): re-read
uvicorn/protocols/http/httptools_impl.py then.
"""

import asyncio

import pytest

from core.protocol import MAX_PIPELINED, HttpToolsProtocol
from core.testing import FakeTransport, connected

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"


class SlowApp:
    """Answers each request once `go` is set; records what receive() said after that."""

    def __init__(self):
        self.go = asyncio.Event()
        self.started = 0
        self.after_answer: list[str] = []

    async def __call__(self, scope, receive, send):
        assert (await receive())["type"] == "http.request"
        self.started += 1
        await self.go.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        # What Django's handler does until the response is closed: wait for a disconnect.
        self.after_answer.append((await receive())["type"])


def connect(app) -> tuple[HttpToolsProtocol, FakeTransport]:
    protocol, transport = connected(app, http="core.protocol:HttpToolsProtocol")
    assert type(protocol) is HttpToolsProtocol
    return protocol, transport


async def until(condition, steps: int = 100) -> None:
    for _ in range(steps):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


async def test_the_request_being_answered_hears_that_its_client_left():
    app = SlowApp()
    protocol, _ = connect(app)
    protocol.data_received(REQUEST * 3)  # the first runs, two wait in the pipeline
    await until(lambda: app.started == 1)
    protocol.connection_lost(None)
    running = protocol.running
    assert running is not None
    assert running.disconnected
    app.go.set()  # its sends are dropped, and receive() says the client left
    await until(lambda: app.after_answer == ["http.disconnect"])
    assert not protocol.pipeline


async def test_pipelined_requests_within_the_bound_are_all_answered():
    app = SlowApp()
    app.go.set()
    protocol, transport = connect(app)
    protocol.data_received(REQUEST * 10)
    await until(lambda: transport.written.count(b"HTTP/1.1 200") == 10)
    assert not transport.closed


async def test_a_connection_with_too_many_pipelined_requests_is_dropped(caplog):
    app = SlowApp()
    protocol, transport = connect(app)
    protocol.data_received(REQUEST * (MAX_PIPELINED + 1))
    await until(lambda: app.started == 1)
    assert not transport.closed
    protocol.data_received(REQUEST)
    assert transport.closed
    assert "pipelined requests" in caplog.text
    protocol.connection_lost(None)
    assert not protocol.pipeline
    app.go.set()
    await until(lambda: app.after_answer == ["http.disconnect"])


@pytest.mark.parametrize("count", [1, MAX_PIPELINED + 1])
async def test_the_bound_counts_waiting_requests_only(count):
    app = SlowApp()
    protocol, transport = connect(app)
    protocol.data_received(REQUEST * count)
    await until(lambda: app.started == 1)
    assert len(protocol.pipeline) == count - 1
    assert not transport.closed
    protocol.connection_lost(None)
    app.go.set()
    await until(lambda: app.after_answer == ["http.disconnect"])
