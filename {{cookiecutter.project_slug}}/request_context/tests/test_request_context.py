import contextvars
import io
import json
import logging
import re
import uuid

import pytest
from django.conf import settings
from django.http import HttpResponse
from django.test import AsyncClient, Client
from pythonjsonlogger.json import JsonFormatter

from core.testing import HANDLER_HOPS, request_hops
from request_context.log import RequestIdFilter
from request_context.middleware import RequestContextMiddleware, request_id

pytestmark = pytest.mark.urls("request_context.tests.urls")

SERVER_TIMING = re.compile(r"app;dur=\d+\.\d")


def is_uuid4(value: str) -> bool:
    return uuid.UUID(value).version == 4


async def get_async(path, **headers):
    return await AsyncClient(raise_request_exception=False).get(path, headers=headers)


def get_sync(path, **headers):
    return Client(raise_request_exception=False).get(path, headers=headers)


@pytest.mark.parametrize("path", ["/rc/async/", "/rc/sync/"])
async def test_asgi_sync_and_async_views_get_an_id_and_timing(path):
    response = await get_async(path)
    assert response.status_code == 200
    assert is_uuid4(response["X-Request-ID"])
    assert response.json() == {"id": response["X-Request-ID"]}
    assert SERVER_TIMING.fullmatch(response["Server-Timing"])


@pytest.mark.parametrize("path", ["/rc/async/", "/rc/sync/"])
def test_wsgi_sync_and_async_views_get_an_id_and_timing(path):
    response = get_sync(path)
    assert response.status_code == 200
    assert response.json() == {"id": response["X-Request-ID"]}
    assert SERVER_TIMING.fullmatch(response["Server-Timing"])


def test_the_sync_path_resets_the_id_after_the_request(rf):
    middleware = RequestContextMiddleware(lambda request: HttpResponse(request_id.get()))
    before = request_id.get()
    response = middleware(rf.get("/", headers={"X-Request-ID": "sync-path"}))
    assert response.content == b"sync-path"
    assert response["X-Request-ID"] == "sync-path"
    assert request_id.get() == before


@pytest.mark.parametrize("incoming", ["abc-123_XYZ", "x" * 64])
async def test_a_safe_incoming_id_is_kept(incoming):
    response = await get_async("/rc/async/", x_request_id=incoming)
    assert response["X-Request-ID"] == incoming


@pytest.mark.parametrize("incoming", ["", "x" * 65, "has space", "semi;colon", "naïve", "a\\b"])
async def test_an_unsafe_incoming_id_is_replaced(incoming):
    response = await get_async("/rc/async/", x_request_id=incoming)
    assert response["X-Request-ID"] != incoming
    assert is_uuid4(response["X-Request-ID"])


@pytest.mark.parametrize(
    ("path", "status"), [("/rc/async/", 200), ("/no/such/page/", 404), ("/rc/fail/", 500)]
)
async def test_server_timing_on_every_response(path, status):
    response = await get_async(path)
    assert response.status_code == status
    assert SERVER_TIMING.fullmatch(response["Server-Timing"])
    assert response["X-Request-ID"]


async def test_server_timing_on_a_streaming_response():
    response = await get_async("/rc/stream/")
    assert response.streaming
    assert SERVER_TIMING.fullmatch(response["Server-Timing"])
    assert b"".join([chunk async for chunk in response.streaming_content]) == b"first,second"


@pytest.fixture
def console_output():
    """What the project's configured console handler writes, in this test."""
    (handler,) = [h for h in logging.getLogger().handlers if h.get_name() == "console"]
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)


@pytest.mark.parametrize("path", ["/rc/async/", "/rc/sync/"])
async def test_log_records_of_a_request_carry_its_id(console_output, path):
    response = await get_async(path, x_request_id="trace-me-42")
    assert response.status_code == 200
    (line,) = [line for line in console_output.getvalue().splitlines() if "inside the" in line]
    assert "trace-me-42" in line


def test_production_log_lines_are_json_objects():
    options = dict(settings.LOGGING["formatters"]["json"])
    del options["()"]
    formatter = JsonFormatter(**options)
    record = logging.LogRecord("app", logging.WARNING, __file__, 1, "disk %s", ("full",), None)
    contextvars.Context().run(RequestIdFilter().filter, record)  # outside any request
    line = json.loads(formatter.format(record))
    assert line["message"] == "disk full"
    assert line["level"] == "WARNING"
    assert line["request_id"] == "-"
    assert line["logger"] == "app"


@pytest.mark.project_classes
async def test_the_middleware_costs_no_hop():
    assert "request_context.middleware.RequestContextMiddleware" in settings.MIDDLEWARE
    assert len(await request_hops("/healthz")) == HANDLER_HOPS
