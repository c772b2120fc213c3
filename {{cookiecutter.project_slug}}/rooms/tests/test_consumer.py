"""The room consumer through config.asgi.application, as a server runs it."""

import asyncio
import datetime
import json
import logging

import pytest
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.db import InterfaceError, OperationalError
from django.test import AsyncClient

from config.asgi import application
from core.models import ApiToken
from core.testing import count_thread_hops
from rooms import auth
from rooms.consumers import INTERNAL_ERROR, POLICY_VIOLATION, RoomConsumer
from rooms.tests.conftest import SAME_ORIGIN, members, room


async def test_a_message_reaches_everyone_in_the_room_sender_included():
    alice, bob, elsewhere = room(), room(), room("kitchen")
    for client in (alice, bob, elsewhere):
        assert (await client.connect())[0]
    await alice.send_json_to({"message": "hello"})
    for client in (alice, bob):
        received = await client.receive_json_from()
        assert {k: v for k, v in received.items() if k != "sent_at"} == {
            "message": "hello",
            "user": "anonymous",
            "room": "lobby",
        }
        sent_at = datetime.datetime.fromisoformat(received["sent_at"])
        assert abs(datetime.datetime.now(datetime.UTC) - sent_at).total_seconds() < 5
    assert await elsewhere.receive_nothing()
    for client in (alice, bob, elsewhere):
        await client.disconnect()


BAD_FRAMES = [
    ({"text_data": "not json"}, "not JSON"),
    ({"text_data": "[1, 2]"}, 'missing "message"'),
    ({"text_data": '{"text": "hi"}'}, 'missing "message"'),
    ({"text_data": '{"message": 5}'}, '"message" must be a string'),
    ({"text_data": '{"message": "   "}'}, '"message" is empty'),
    ({"text_data": '{"message": "' + "x" * 2001 + '"}'}, "longer than 2000 characters"),
    ({"text_data": '{"message": "hi", "to": "bob"}'}, "unexpected fields: to"),
    ({"bytes_data": b"\x00\x01"}, "binary frames are not accepted"),
    # JSON that json.loads accepts but nothing downstream can use (core.client_json).
    ({"text_data": '{"message": "\\ud800"}'}, "lone surrogate"),
    ({"text_data": '{"message": "a\\u0000b"}'}, "NUL character"),
    ({"text_data": '{"message": NaN}'}, "NaN is not JSON"),
    ({"text_data": '{"message": "hi", "n": 1e999}'}, "out of range"),
    ({"text_data": '{"message": "hi", "n": ' + "9" * 30 + "}"}, "out of range"),
    ({"text_data": "[" * 5000 + "]" * 5000}, "nested deeper than"),
]


@pytest.mark.parametrize(("frame", "error"), BAD_FRAMES)
async def test_a_bad_frame_gets_an_error_and_the_socket_stays_open(
    frame, error, channel_layer, caplog
):
    """A client's mistake: an {"error"} frame, never a 1011, never an ERROR log line."""
    client = room()
    assert (await client.connect())[0]
    await client.send_to(**frame)
    assert error in (await client.receive_json_from())["error"]
    await client.send_json_to({"message": "still here"})
    assert (await client.receive_json_from())["message"] == "still here"
    assert len(await members(channel_layer)) == 1
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    await client.disconnect()


@pytest.mark.parametrize("name", ["bad.name", "has space", "x" * 65, "ünïcode"])
async def test_a_bad_room_name_is_refused_at_connect(name):
    connected, _ = await room(name).connect()
    assert not connected


@pytest.mark.parametrize("path", ["/ws/nowhere/", "/ws/rooms/", "/ws/rooms/lobby"])
async def test_an_unknown_path_is_refused(path):
    client = WebsocketCommunicator(application, path, headers=[(b"origin", b"http://localhost")])
    connected, _ = await client.connect()
    assert not connected


@pytest.mark.parametrize(
    "origin", [[(b"origin", b"https://evil.example")], [(b"origin", b"null")], []]
)
async def test_a_foreign_or_missing_origin_is_refused_before_accept(origin):
    client = WebsocketCommunicator(application, "/ws/rooms/lobby/", headers=origin)
    connected, _ = await client.connect()
    assert not connected


@pytest.mark.parametrize(
    "origin",
    [b"http://[", b"http://[::1", b"http://a]", b"http://localhost:99999", b"http://localhost:x"],
)
async def test_an_origin_that_is_not_a_url_is_refused_quietly(origin, caplog):
    """Channels' OriginValidator raises ValueError on these: an HTTP 500 and a traceback."""
    client = WebsocketCommunicator(application, "/ws/rooms/lobby/", headers=[(b"origin", origin)])
    connected, code = await client.connect()
    assert not connected
    assert code == 1000  # refused before accept: the server answers the handshake 403
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


UNKNOWN_TOKEN = "n0t-a-real-token" * 3
REFUSALS = [
    ("/ws/rooms/lobby/", [(b"origin", b"https://evil.example")],
     "its Origin 'https://evil.example' is not one of ALLOWED_HOSTS"),
    ("/ws/rooms/lobby/", [], "no Origin header"),
    ("/ws/rooms/lobby/", [(b"origin", b"http://[")], "its Origin 'http://[' is not a URL"),
    ("/ws/nowhere/", [SAME_ORIGIN], "no websocket route serves this path"),
    ("/ws/rooms/bad.name/", [SAME_ORIGIN], "a room name is 1 to 64 letters, digits, '_' or '-'"),
    ("/ws/rooms/lobby/", [SAME_ORIGIN, (b"authorization", b"Bearer short")],
     "its bearer token is malformed"),
    pytest.param(
        "/ws/rooms/lobby/", [SAME_ORIGIN, (b"authorization", f"Bearer {UNKNOWN_TOKEN}".encode())],
        "its bearer token is unknown, or its user inactive",
        marks=pytest.mark.django_db(transaction=True),
    ),
]  # fmt: skip


@pytest.mark.parametrize(("path", "headers", "reason"), REFUSALS)
async def test_a_refused_handshake_logs_why_on_one_line(path, headers, reason, caplog):
    """A client's mistake: INFO, with the path and the client's address, never a credential."""
    client = WebsocketCommunicator(application, path, headers=headers)
    client.scope["client"] = ["203.0.113.7", 50000]
    with caplog.at_level(logging.INFO, logger="rooms"):
        connected, _ = await client.connect()
    assert not connected
    (record,) = [r for r in caplog.records if r.getMessage().startswith("Refused a websocket")]
    assert record.levelno == logging.INFO
    assert record.getMessage() == f"Refused a websocket to {path!r} from 203.0.113.7: {reason}"
    assert UNKNOWN_TOKEN not in caplog.text


async def test_a_message_costs_no_thread_hop():
    """Channels' own dispatch hops to a thread before each frame and each room message."""
    client = room()
    assert (await client.connect())[0]
    with count_thread_hops() as hops:
        await client.send_json_to({"message": "hello"})
        assert (await client.receive_json_from())["message"] == "hello"
    assert hops == []
    await client.disconnect()


async def test_a_flood_is_told_then_closed_with_policy_violation(settings, channel_layer, caplog):
    """Frames and room messages still queued at the close are dropped, not sent after it."""
    settings.ROOMS_RATE_LIMIT = 3
    settings.ROOMS_RATE_WINDOW_SECONDS = 60
    client = room()
    assert (await client.connect())[0]
    # Sent at once, as a flooding client does: the consumer is still busy when
    # the fourth closes the socket, with frames and room messages queued.
    for n in range(6):
        await client.send_json_to({"message": f"spam {n}"})
    outputs = []
    while not outputs or outputs[-1]["type"] != "websocket.close":
        outputs.append(await client.receive_output())
    assert outputs[-1] == {"type": "websocket.close", "code": POLICY_VIOLATION}
    assert json.loads(outputs[-2]["text"]) == {
        "error": "rate limit exceeded: at most 3 frames per 60 seconds"
    }
    # Nothing after the close (a server refuses it: "send after close"), no longer in the room.
    assert await client.receive_nothing()
    assert await members(channel_layer) == set()
    await client.wait()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


# The user is looked up on asgiref's thread, on its own connection: it must see
# what the test committed.
@pytest.mark.django_db(transaction=True)
async def test_a_session_user_is_named():
    user = await get_user_model().objects.acreate_user("ada", password="a long passphrase")
    browser = AsyncClient()
    await browser.aforce_login(user)
    cookie = f"sessionid={browser.cookies['sessionid'].value}".encode()
    client = room(headers=[(b"cookie", cookie)])
    assert (await client.connect())[0]
    await client.send_json_to({"message": "hi"})
    assert (await client.receive_json_from())["user"] == "ada"
    await client.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_bearer_token_user_is_named():
    user = await get_user_model().objects.acreate(username="grace")
    _, token = await ApiToken.aissue(user)
    client = room(headers=[(b"authorization", f"Bearer {token}".encode())])
    assert (await client.connect())[0]
    await client.send_json_to({"message": "hi"})
    assert (await client.receive_json_from())["user"] == "grace"
    await client.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("token", ["n0t-a-real-token" * 3, "short"])
async def test_a_bad_bearer_token_is_refused(token):
    connected, _ = await room(headers=[(b"authorization", f"Bearer {token}".encode())]).connect()
    assert not connected


class LayerDown(Exception):
    """What a channel layer raises when its server is gone (redis.ConnectionError, say)."""


async def http_refusal(client) -> tuple[int, list, dict]:
    """Connect as uvicorn would, offering the extension that lets a refusal carry an
    HTTP status; return the refusal's status, headers and JSON body."""
    client.scope["extensions"] = {"websocket.http.response": {}}
    await client.send_input({"type": "websocket.connect"})
    start = await client.receive_output()
    body = await client.receive_output()
    assert start["type"] == "websocket.http.response.start"
    return start["status"], start["headers"], json.loads(body["body"])


async def test_a_channel_layer_down_at_connect_refuses_with_503(channel_layer, monkeypatch, caplog):
    async def down(*args):
        raise LayerDown("the channel layer is down")

    monkeypatch.setattr(channel_layer, "group_add", down)
    client = room()
    status, headers, body = await http_refusal(client)
    assert status == 503
    assert (b"retry-after", b"5") in headers
    assert body == {"detail": "The room is unavailable; retry shortly."}
    assert [
        r.levelname for r in caplog.records if "the channel layer failed" in r.getMessage()
    ] == ["WARNING"]
    # The server reports the refused socket gone; the consumer then ends by itself.
    await client.send_input({"type": "websocket.disconnect", "code": 1006})
    await client.wait()


async def test_a_channel_layer_that_fails_under_an_open_socket_closes_it_with_1011(
    channel_layer, monkeypatch
):
    failing = asyncio.Event()
    receive = channel_layer.receive

    async def fails_when_told(channel):
        # Waits like the real receive until the test makes the layer fail.
        waiting = asyncio.ensure_future(receive(channel))
        told = asyncio.ensure_future(failing.wait())
        done, _ = await asyncio.wait({waiting, told}, return_when=asyncio.FIRST_COMPLETED)
        if told in done:
            waiting.cancel()
            raise LayerDown("the channel layer is down")
        told.cancel()
        return waiting.result()

    monkeypatch.setattr(channel_layer, "receive", fails_when_told)
    client = room()
    assert (await client.connect())[0]
    failing.set()
    assert await client.receive_output() == {"type": "websocket.close", "code": INTERNAL_ERROR}
    await client.wait()
    # Left the room too: the layer would otherwise queue the room's messages for it.
    assert await members(channel_layer) == set()


async def test_a_client_gone_mid_broadcast_is_left_to_the_server(
    monkeypatch, caplog, channel_layer
):
    async def client_gone(self, content, close=False):
        raise ConnectionResetError("the client left")  # as uvicorn's ClientDisconnected, an OSError

    client = room()
    assert (await client.connect())[0]
    monkeypatch.setattr(RoomConsumer, "send_json", client_gone)
    await client.send_json_to({"message": "hello"})
    with pytest.raises(ConnectionResetError):
        await client.wait()
    assert "stopped working" not in caplog.text
    assert await members(channel_layer) == set()


async def test_a_client_that_leaves_leaves_the_room(channel_layer):
    client = room()
    assert (await client.connect())[0]
    assert len(await members(channel_layer)) == 1
    await client.disconnect()
    assert await members(channel_layer) == set()


async def test_a_send_that_fails_while_closing_still_leaves_the_room(
    settings, monkeypatch, channel_layer
):
    """The rate-limit close reaches a client already gone: the send raises, the room is left."""
    settings.ROOMS_RATE_LIMIT = 0

    async def client_gone(self, code=None, reason=None):
        raise ConnectionResetError("the client left")  # as uvicorn's ClientDisconnected

    monkeypatch.setattr(AsyncWebsocketConsumer, "close", client_gone)
    client = room()
    assert (await client.connect())[0]
    await client.send_json_to({"message": "hello"})
    with pytest.raises(ConnectionResetError):
        await client.wait()
    assert await members(channel_layer) == set()


async def test_a_cancelled_consumer_leaves_the_room(channel_layer):
    """A server that stops cancels its applications; the room is left on the way out."""
    client = room()
    assert (await client.connect())[0]
    client.future.cancel()
    with pytest.raises(asyncio.CancelledError):
        await client.future
    assert await members(channel_layer) == set()


@pytest.mark.parametrize("error", [OperationalError, InterfaceError])
async def test_a_bearer_token_with_the_database_down_is_refused_with_503(
    monkeypatch, caplog, error
):
    async def database_down(token):
        raise error("connection refused")

    monkeypatch.setattr(auth, "user_for_token", database_down)
    client = room(headers=[(b"authorization", b"Bearer " + b"t" * 43)])
    status, headers, body = await http_refusal(client)
    assert status == 503
    assert (b"retry-after", b"5") in headers
    assert body == {"detail": "The database is unavailable; retry shortly."}
    await client.wait()
    assert [r.levelname for r in caplog.records if "database is unavailable" in r.getMessage()] == [
        "WARNING"
    ]


async def test_a_session_cookie_with_the_database_down_is_refused(monkeypatch):
    """The session lookup (Channels' AuthMiddleware) meets the same refusal."""

    def database_down(self, *args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr("django.contrib.sessions.backends.db.SessionStore.load", database_down)
    connected, _ = await room(headers=[(b"cookie", b"sessionid=" + b"s" * 32)]).connect()
    assert not connected  # without the extension: closed before accept (HTTP 403), not a crash
