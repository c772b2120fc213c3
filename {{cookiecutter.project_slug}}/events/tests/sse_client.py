"""An SSE client that drives GET /events/ through Django's real ASGI handler.

It plays the server's part: one task runs the application, `send` collects
the body, and `disconnect()` delivers `http.disconnect` as uvicorn does when
the client goes away. A `gate` can hold `send` to play a client that stopped
reading.
"""

import asyncio
from dataclasses import dataclass

from core.testing import http_scope


@dataclass
class Message:
    """One parsed message of the stream (fields absent from it are None)."""

    id: str | None = None
    event: str | None = None
    data: str | None = None
    retry: str | None = None
    comment: str | None = None


def parse(block: str) -> Message:
    message = Message()
    for line in block.split("\n"):
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "":
            message.comment = value
        else:
            setattr(message, field, value)
    return message


class SSEClient:
    def __init__(self, app, path="/events/", headers=(), gate: asyncio.Event | None = None):
        self.app = app
        self.scope = http_scope("GET", path, headers)
        self.gate = gate
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.chunks: list[bytes] = []
        self.ended = asyncio.Event()
        self.blocked = asyncio.Event()  # set once a send waits on the closed gate
        self._buffer = ""
        self._messages: asyncio.Queue[Message] = asyncio.Queue()
        self._incoming: asyncio.Queue[dict] = asyncio.Queue()
        self._incoming.put_nowait({"type": "http.request", "body": b"", "more_body": False})
        self.task: asyncio.Task | None = None

    async def __aenter__(self):
        self.task = asyncio.create_task(self.app(self.scope, self._incoming.get, self._send))
        return self

    async def __aexit__(self, *exc_info):
        await self.disconnect()

    async def _send(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = {k.decode().lower(): v.decode() for k, v in message["headers"]}
            return
        if not message.get("more_body", False):
            self.ended.set()
            return
        if self.gate is not None and self.chunks and not self.gate.is_set():
            self.blocked.set()
            await self.gate.wait()
        self.chunks.append(message["body"])
        self._buffer += message["body"].decode()
        *blocks, self._buffer = self._buffer.split("\n\n")
        for block in blocks:
            self._messages.put_nowait(parse(block))

    async def message(self, seconds: float = 5.0) -> Message:
        async with asyncio.timeout(seconds):
            return await self._messages.get()

    async def events(self, count: int, seconds: float = 5.0) -> list[Message]:
        """The next `count` messages that carry data, skipping heartbeats and id-only ones."""
        found = []
        async with asyncio.timeout(seconds):
            while len(found) < count:
                message = await self._messages.get()
                if message.data is not None:
                    found.append(message)
        return found

    def pending(self) -> list[Message]:
        """Messages received and not read yet."""
        found = []
        while not self._messages.empty():
            found.append(self._messages.get_nowait())
        return found

    async def disconnect(self) -> None:
        if self.task is None or self.task.done():
            return
        self._incoming.put_nowait({"type": "http.disconnect"})
        async with asyncio.timeout(5):
            await self.task
