"""POST /events/publish/: bearer token, validation, and what a stream then receives."""

import json
import logging

import pytest

from core.testing import database_down
from events.tests.sse_client import SSEClient

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/events/publish/"


async def post(async_client, body, headers=None, **extra):
    payload = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return await async_client.post(
        URL, payload, content_type="application/json", headers=headers or {}, **extra
    )


async def test_publish_returns_the_id_the_stream_carries(app, async_client, broker, token_headers):
    async with SSEClient(app) as client:
        await client.message()
        body = {"event": "order.paid", "data": {"id": 5}}
        response = await post(async_client, body, token_headers)
        (received,) = await client.events(1)
    assert response.status_code == 202
    assert response.json() == {"id": received.id}
    assert (received.event, json.loads(received.data)) == ("order.paid", {"id": 5})


async def test_null_data_is_published(async_client, broker, token_headers):
    response = await post(async_client, {"event": "cleared", "data": None}, token_headers)
    assert response.status_code == 202


async def test_publish_without_a_token_is_401(async_client, broker):
    response = await post(async_client, {"event": "x", "data": 1})
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


@pytest.mark.parametrize("debug", [False, True])
async def test_publish_with_the_database_down_is_503_json(
    async_client, broker, token_headers, debug, settings
):
    """The token lookup fails: the same 503 JSON with DEBUG on (no technical 500 page)."""
    settings.DEBUG = debug
    with database_down():
        response = await post(async_client, {"event": "x", "data": 1}, token_headers)
    assert response.status_code == 503
    assert response.json() == {"detail": "The database is unavailable; retry shortly."}


async def test_publish_with_a_bad_token_is_401(async_client, broker):
    headers = {"Authorization": "Bearer " + "n0t-a-real-token" * 3}
    response = await post(async_client, {"event": "x", "data": 1}, headers)
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"{not json", "The body must be JSON"),
        (b"", "The body must be JSON"),
        ([1, 2], 'a JSON object with "event" and "data"'),
        ({"data": 1}, 'a JSON object with "event" and "data"'),
        ({"event": "x"}, 'a JSON object with "event" and "data"'),
        ({"event": "x", "data": 1, "extra": 2}, "Unexpected fields: extra."),
        ({"event": "", "data": 1}, "Invalid event: event must be a name"),
        ({"event": "two words", "data": 1}, "Invalid event: event must be a name"),
        ({"event": "line\nbreak", "data": 1}, "Invalid event: event must be a name"),
        ({"event": 42, "data": 1}, "Invalid event: event must be a name"),
        ({"event": "x" * 65, "data": 1}, "Invalid event: event must be a name"),
        ({"event": "reset", "data": 1}, "Invalid event: event name 'reset' is reserved"),
        ({"event": "big", "data": "x" * 65_540}, "Invalid event: data is 65542 bytes"),
    ],
)
async def test_bad_bodies_are_400_with_a_message(async_client, broker, token_headers, body, detail):
    response = await post(async_client, body, token_headers)
    assert response.status_code == 400
    assert detail in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"event": "a", "data": "\\ud800"}', "lone surrogate"),
        (b'{"event": "a", "data": {"\\udfff": 1}}', "lone surrogate"),
        (b'{"event": "\\ud800", "data": 1}', "lone surrogate"),
        (b"[" * 5000 + b"]" * 5000, "nested deeper"),
        (b'{"event": "a", "data": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested deeper"),
        (b'{"event": "a", "data": NaN}', "NaN is not JSON"),
        (b'{"event": "a", "data": -Infinity}', "-Infinity is not JSON"),
        (b'{"event": "a", "data": 1e999}', "out of range"),
        (b'{"event": "a", "data": 18446744073709551616}', "out of range"),
        (b'{"event": "a", "data": "\\u0000"}', "NUL"),
        (b'{"event": "a", "data": "\xff"}', "not UTF-8"),
    ],
)
async def test_unusable_json_is_400_and_no_error_log(
    async_client, broker, token_headers, caplog, body, problem
):
    """core.client_json decodes the body: what json.loads lets through or raises on is a 400."""
    response = await post(async_client, body, token_headers)
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail.startswith("The body must be JSON")
    assert problem in detail
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_nothing_is_published_by_a_refused_request(app, async_client, broker, token_headers):
    async with SSEClient(app) as client:
        await client.message()
        await post(async_client, {"event": "bad name", "data": 1}, token_headers)
        await post(async_client, {"event": "good", "data": 2}, token_headers)
        (received,) = await client.events(1)
    assert received.event == "good"


async def test_methods(async_client, broker, token_headers):
    assert (await async_client.get(URL, headers=token_headers)).status_code == 405
    assert (await async_client.post("/events/")).status_code == 405
