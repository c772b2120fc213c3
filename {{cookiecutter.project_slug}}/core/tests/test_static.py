"""/static/ under ASGI: ServeStatic's files, read on the shared executor (core/static.py)."""

import asyncio
import threading
from pathlib import Path
from unittest import mock

import django.contrib.admin
import pytest

BASE_CSS = "/static/admin/css/base.css"
SOURCE = Path(django.contrib.admin.__file__).parent / "static/admin/css/base.css"


async def body_of(response) -> bytes:
    return b"".join([chunk async for chunk in response.streaming_content])


@pytest.fixture
def no_thread_per_file():
    """ServeStatic's AsyncFile starts a thread per file: fail if one is made."""
    with mock.patch("servestatic.responders.AsyncFile", side_effect=AssertionError("AsyncFile")):
        yield


async def test_a_static_file_is_served_whole_with_its_headers(async_client, no_thread_per_file):
    response = await async_client.get(BASE_CSS)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/css")
    assert int(response["Content-Length"]) == SOURCE.stat().st_size
    assert await body_of(response) == SOURCE.read_bytes()
    again = await async_client.get(BASE_CSS, headers={"If-None-Match": response["ETag"]})
    assert again.status_code == 304


async def test_head_opens_no_file(async_client, no_thread_per_file):
    response = await async_client.head(BASE_CSS)
    assert response.status_code == 200
    assert int(response["Content-Length"]) == SOURCE.stat().st_size


async def test_a_range_request_gets_the_slice(async_client):
    response = await async_client.get(BASE_CSS, headers={"Range": "bytes=10-19"})
    assert response.status_code == 206
    assert await body_of(response) == SOURCE.read_bytes()[10:20]


async def test_files_in_flight_share_the_loops_threads(async_client, no_thread_per_file):
    before = threading.active_count()
    peak = before

    async def fetch():
        nonlocal peak
        response = await async_client.get(BASE_CSS)
        async for _ in response.streaming_content:
            peak = max(peak, threading.active_count())
            await asyncio.sleep(0)
        return response

    responses = await asyncio.gather(*(fetch() for _ in range(30)))
    assert {r.status_code for r in responses} == {200}
    # At most the loop's default executor (min(32, cores + 4) threads), not one per file.
    assert peak - before <= 32
