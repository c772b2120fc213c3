import asyncio

import pytest
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.wsgi import WSGIHandler
from django.test import RequestFactory

from core.testing import http_scope

from .. import streaming, urls

pytestmark = pytest.mark.urls(urls.__name__)


class AsgiServer:
    """Plays uvicorn's part for one request: collects what is sent, can disconnect."""

    def __init__(self, path: str):
        self.incoming: asyncio.Queue[dict] = asyncio.Queue()
        self.incoming.put_nowait({"type": "http.request", "body": b"", "more_body": False})
        self.chunks: asyncio.Queue[bytes] = asyncio.Queue()
        scope = http_scope("GET", path)
        self.task = asyncio.create_task(ASGIHandler()(scope, self.receive, self.send))

    async def receive(self) -> dict:
        return await self.incoming.get()

    async def send(self, message: dict) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            self.chunks.put_nowait(message["body"])

    async def next_chunk(self) -> bytes:
        async with asyncio.timeout(5):
            return await self.chunks.get()

    async def disconnect(self) -> None:
        self.incoming.put_nowait({"type": "http.disconnect"})
        async with asyncio.timeout(5):
            await self.task


async def test_a_stream_sends_as_it_goes_and_cleans_up_on_disconnect():
    server = AsgiServer("/live/")
    assert await server.next_chunk() == b": connected\n\n"  # it has subscribed

    streaming.announce("hello")
    assert await server.next_chunk() == b"data: hello\n\n"

    await server.disconnect()  # Django cancels the generator; its finally runs
    assert streaming.listeners == set()


async def test_under_asgi_the_first_chunk_leaves_before_the_stream_ends():
    streaming.progress.clear()
    server = AsgiServer("/countdown/")

    assert await server.next_chunk() == b"3\n"
    assert "done" not in streaming.progress

    await server.disconnect()


# --8<-- [start:wsgi]
@pytest.mark.django_db  # Django's WSGI handler checks the connection at each request
def test_under_wsgi_the_whole_stream_is_read_before_the_first_chunk():
    streaming.progress.clear()
    environ = RequestFactory().get("/countdown/").environ
    response = WSGIHandler()(environ, lambda status, headers: None)

    with pytest.warns(Warning, match="must consume asynchronous iterators"):
        chunks = iter(response)
    assert streaming.progress[-1] == "done"  # everything ran before anything was sent
    assert list(chunks) == [b"3\n", b"2\n", b"1\n"]
    response.close()


# --8<-- [end:wsgi]
