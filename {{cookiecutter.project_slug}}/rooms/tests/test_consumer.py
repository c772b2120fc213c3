"""The room consumer through config.asgi.application, as a server runs it."""

import asyncio
import datetime
import json

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import AsyncClient

from config.asgi import application
from core.models import ApiToken
from core.testing import count_thread_hops
from rooms.consumers import INTERNAL_ERROR, POLICY_VIOLATION, RoomConsumer
from rooms.tests.conftest import room

# Channels' auth middleware closes stale database connections around its session lookup.
pytestmark = pytest.mark.django_db(transaction=True)


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
]


@pytest.mark.parametrize(("frame", "error"), BAD_FRAMES)
async def test_a_bad_frame_gets_an_error_and_the_socket_stays_open(frame, error):
    client = room()
    assert (await client.connect())[0]
    await client.send_to(**frame)
    assert error in (await client.receive_json_from())["error"]
    await client.send_json_to({"message": "still here"})
    assert (await client.receive_json_from())["message"] == "still here"
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


async def test_a_message_costs_no_thread_hop():
    """Channels' own dispatch hops to a thread before each frame and each room message."""
    client = room()
    assert (await client.connect())[0]
    with count_thread_hops() as hops:
        await client.send_json_to({"message": "hello"})
        assert (await client.receive_json_from())["message"] == "hello"
    assert hops == []
    await client.disconnect()


async def test_a_flood_is_told_then_closed_with_policy_violation(settings):
    settings.ROOMS_RATE_LIMIT = 3
    settings.ROOMS_RATE_WINDOW_SECONDS = 60
    client = room()
    assert (await client.connect())[0]
    for n in range(3):
        await client.send_json_to({"message": f"spam {n}"})
        assert (await client.receive_json_from())["message"] == f"spam {n}"
    await client.send_json_to({"message": "one too many"})
    assert await client.receive_json_from() == {
        "error": "rate limit exceeded: at most 3 frames per 60 seconds"
    }
    assert await client.receive_output() == {"type": "websocket.close", "code": POLICY_VIOLATION}


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


async def test_a_bearer_token_user_is_named():
    user = await get_user_model().objects.acreate(username="grace")
    _, token = await ApiToken.aissue(user)
    client = room(headers=[(b"authorization", f"Bearer {token}".encode())])
    assert (await client.connect())[0]
    await client.send_json_to({"message": "hi"})
    assert (await client.receive_json_from())["user"] == "grace"
    await client.disconnect()


@pytest.mark.parametrize("token", ["n0t-a-real-token" * 3, "short"])
async def test_a_bad_bearer_token_is_refused(token):
    connected, _ = await room(headers=[(b"authorization", f"Bearer {token}".encode())]).connect()
    assert not connected


class LayerDown(Exception):
    """What a channel layer raises when its server is gone (redis.ConnectionError, say)."""


async def test_a_channel_layer_down_at_connect_refuses_with_503(channel_layer, monkeypatch):
    async def down(*args):
        raise LayerDown("the channel layer is down")

    monkeypatch.setattr(channel_layer, "group_add", down)
    client = room()
    # uvicorn offers the extension that lets a refusal carry an HTTP status.
    client.scope["extensions"] = {"websocket.http.response": {}}
    await client.send_input({"type": "websocket.connect"})
    start = await client.receive_output()
    body = await client.receive_output()
    assert (start["type"], start["status"]) == ("websocket.http.response.start", 503)
    assert (b"retry-after", b"5") in start["headers"]
    assert json.loads(body["body"]) == {"detail": "The room is unavailable; retry shortly."}
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


async def test_a_client_gone_mid_broadcast_is_left_to_the_server(monkeypatch, caplog):
    async def client_gone(self, content, close=False):
        raise ConnectionResetError("the client left")  # as uvicorn's ClientDisconnected, an OSError

    client = room()
    assert (await client.connect())[0]
    monkeypatch.setattr(RoomConsumer, "send_json", client_gone)
    await client.send_json_to({"message": "hello"})
    with pytest.raises(ConnectionResetError):
        await client.wait()
    assert "stopped working" not in caplog.text
