"""rooms.protocol against uvicorn's own websocket protocol, over a fake transport.

These fail if uvicorn changes what rooms/protocol.py relies on (the
websockets-sansio implementation's `conn`, `handshake_initiated`, `frames`,
`curr_msg_data_type`, `handle_parser_exception`, `pause_writing` and
`resume_writing`) or websockets does (ServerProtocol's `send_frame`): re-read
uvicorn/protocols/websockets/websockets_sansio_impl.py then.
"""

import asyncio
import logging
import os
import struct

import pytest

from core.testing import FakeTransport, connected
from rooms.protocol import WebSocketProtocol

HANDSHAKE = (
    b"GET /ws/rooms/lobby/ HTTP/1.1\r\n"
    b"Host: localhost\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
)


async def echo(scope, receive, send):
    """Accepts, then answers each text message with itself."""
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while (message := await receive())["type"] == "websocket.receive":
        await send({"type": "websocket.send", "text": message["text"]})


def connect(app=echo) -> tuple[WebSocketProtocol, FakeTransport]:
    protocol, transport = connected(app, ws="rooms.protocol:WebSocketProtocol")
    assert type(protocol) is WebSocketProtocol
    return protocol, transport


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked, final frame of at most 125 bytes from a client (RFC 6455 section 5.2)."""
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return struct.pack("!BB", 0x80 | opcode, 0x80 | len(payload)) + mask + masked


def text_frame(payload: bytes) -> bytes:
    return client_frame(0x1, payload)


def ping_frame(payload: bytes) -> bytes:
    return client_frame(0x9, payload)


async def until(condition, seconds: float = 0.5) -> None:
    """Let the application's task run until `condition()` holds, for at most `seconds`."""
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    assert condition()


async def accepted(protocol: WebSocketProtocol, transport: FakeTransport) -> None:
    """Complete the handshake; the application accepts in a task of its own."""
    protocol.data_received(HANDSHAKE + b"\r\n")
    await until(lambda: b"101 Switching Protocols" in transport.written)


@pytest.mark.parametrize(
    ("extra", "status"),
    [
        (b"X-Long: " + b"a" * 9000 + b"\r\n", b"431"),
        (b"".join(b"X-%d: 1\r\n" % n for n in range(200)), b"431"),
    ],
)
async def test_a_refused_handshake_is_answered_and_closed(extra, status):
    protocol, transport = connect()
    protocol.data_received(HANDSHAKE + extra + b"\r\n")
    assert transport.written.startswith(b"HTTP/1.1 " + status), transport.written[:80]
    assert transport.closed


async def test_bytes_that_are_not_http_close_the_connection():
    protocol, transport = connect()
    protocol.data_received(b"\x16\x03\x01 not an HTTP request\r\n\r\n")
    assert transport.closed


async def test_text_that_is_not_utf8_closes_1007_with_no_error_logged(caplog):
    protocol, transport = connect()
    await accepted(protocol, transport)
    with caplog.at_level(logging.INFO, logger="uvicorn.error"):
        protocol.data_received(text_frame(b"\xff\xfe"))
    close = transport.written.rsplit(b"\r\n\r\n", 1)[1]
    assert close[:1] == b"\x88", close  # a close frame
    assert struct.unpack("!H", close[2:4])[0] == 1007
    assert transport.closed
    assert max(r.levelno for r in caplog.records) == logging.INFO
    assert "not UTF-8" in caplog.records[-1].getMessage()
    protocol.connection_lost(None)
    await asyncio.sleep(0)


async def test_good_text_still_reaches_the_application():
    protocol, transport = connect()
    await accepted(protocol, transport)
    sent = len(transport.written)
    protocol.data_received(text_frame("Zoë ☕".encode()))
    await until(lambda: len(transport.written) > sent)
    assert "Zoë ☕".encode() in transport.written[sent:]
    assert not transport.closed
    protocol.connection_lost(None)
    await asyncio.sleep(0)


async def test_pings_are_not_answered_while_the_client_is_not_reading():
    protocol, transport = connect()
    await accepted(protocol, transport)
    protocol.data_received(ping_frame(b"a" * 125))
    assert transport.written.endswith(b"\x8a\x7d" + b"a" * 125)  # answered at once

    # The transport's buffer is over its high-water mark: the client is not reading.
    protocol.pause_writing()
    written = len(transport.written)
    for n in range(1000):
        protocol.data_received(ping_frame(b"%03d" % n + b"p" * 122))
    assert len(transport.written) == written
    assert not transport.closed

    # Drained: one pong, for the latest ping (RFC 6455 5.5.3).
    protocol.resume_writing()
    assert transport.written[written:] == b"\x8a\x7d" + b"999" + b"p" * 122
    protocol.data_received(ping_frame(b"b"))
    assert transport.written.endswith(b"\x8a\x01b")
    protocol.connection_lost(None)
    await asyncio.sleep(0)
