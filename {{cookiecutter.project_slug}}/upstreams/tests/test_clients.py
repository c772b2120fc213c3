"""The shared client's lifecycle, the retry rules, and the typed client example."""

import datetime

import httpx
import pytest

from upstreams.client import aclose_client, get_client
from upstreams.lifespan import Lifespan
from upstreams.retries import request
from upstreams.status_api import ServiceNotFound, StatusApi, StatusApiError, StatusApiUnavailable


# Startup runs the system checks, as runserver does; a model with a JSONField
# asks the database whether it supports JSON (SQLite answers with a query).
@pytest.mark.django_db(transaction=True)
async def test_one_client_is_shared_until_shutdown_closes_it():
    first = get_client()
    assert get_client() is first
    assert first.timeout.connect == 2.0 and first.timeout.read == 5.0

    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent = []

    async def receive():
        return next(messages)

    async def send(message):
        sent.append(message["type"])

    await Lifespan(app=None)({"type": "lifespan"}, receive, send)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert first.is_closed
    assert get_client() is not first


@pytest.mark.django_db(transaction=True)
async def test_startup_fails_with_the_check_message_when_a_setting_is_bad(settings):
    settings.DASHBOARD_SOURCES = "not-a-source"
    messages = iter([{"type": "lifespan.startup"}])
    sent = []

    async def receive():
        return next(messages)

    async def send(message):
        sent.append(message)

    await Lifespan(app=None)({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.failed"]
    assert "upstreams.E001" in sent[0]["message"]


async def test_a_post_is_never_retried(settings):
    calls = []

    def handler(request):
        calls.append(request.method)
        return httpx.Response(503)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        response = await request(client, "POST", "http://x.test/", deadline=1)
    assert (response.status_code, calls) == (503, ["POST"])


async def test_the_deadline_bounds_every_attempt(settings):
    async def handler(request):
        raise httpx.ConnectTimeout("slow", request=request)

    settings.HTTPX_RETRY_ATTEMPTS = 100
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises((TimeoutError, httpx.TimeoutException)):
            await request(client, "GET", "http://x.test/", deadline=0.2)


def status_api(handler) -> StatusApi:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return StatusApi("https://status.test/api/", token="t0ken", client=client)


async def test_the_typed_client_returns_a_dataclass_and_sends_its_token():
    seen = {}

    def handler(request):
        seen["url"], seen["auth"] = str(request.url), request.headers["Authorization"]
        body = {"name": "billing", "healthy": True, "checked_at": "2026-01-02T03:04:05+00:00"}
        return httpx.Response(200, json=body)

    status = await status_api(handler).service("billing")
    assert status.healthy is True
    assert status.checked_at == datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    assert seen == {"url": "https://status.test/api/services/billing", "auth": "Bearer t0ken"}


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (httpx.Response(404), ServiceNotFound),
        (httpx.Response(500), StatusApiUnavailable),
        (httpx.Response(401), StatusApiError),
        (httpx.Response(200, json={"name": "x"}), StatusApiError),
        (httpx.Response(200, text="<html>"), StatusApiError),
        (httpx.Response(302, headers={"Location": "/elsewhere"}), StatusApiError),
    ],
)
async def test_the_typed_client_maps_failures(answer, error):
    with pytest.raises(error):
        await status_api(lambda request: answer).service("billing")


async def test_the_typed_client_maps_an_unreachable_upstream(settings):
    settings.HTTPX_RETRY_WAIT_INITIAL = 0.01

    def handler(request):
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(StatusApiUnavailable):
        await status_api(handler).service("billing")
    await aclose_client()


@pytest.mark.parametrize("name", ["", ".", ".."])
async def test_a_name_that_is_not_one_path_segment_is_not_asked_for(name):
    calls = []

    def handler(request):
        calls.append(str(request.url))  # "..": https://status.test/api/, another endpoint
        return httpx.Response(200, json={})

    with pytest.raises(ServiceNotFound):
        await status_api(handler).service(name)
    assert calls == []


@pytest.mark.parametrize(
    "body",
    [
        {"name": "billing", "healthy": "false", "checked_at": "2026-01-02T03:04:05+00:00"},
        {"name": "billing", "healthy": True, "checked_at": "2026-01-02T03:04:05"},
        {"name": 7, "healthy": True, "checked_at": "2026-01-02T03:04:05+00:00"},
    ],
)
async def test_fields_of_the_wrong_type_are_a_status_api_error(body):
    with pytest.raises(StatusApiError):
        await status_api(lambda request: httpx.Response(200, json=body)).service("billing")


async def test_json_nested_too_deep_is_a_status_api_error():
    deep = b"[" * 100_000 + b"]" * 100_000
    answer = httpx.Response(200, content=deep, headers={"content-type": "application/json"})
    with pytest.raises(StatusApiError):
        await status_api(lambda request: answer).service("billing")
