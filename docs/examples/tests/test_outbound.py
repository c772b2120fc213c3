import asyncio
import time

import httpx
import pytest

from ..outbound import fetch_all


def upstream(delay: float, cancelled: list[str] | None = None):
    """A MockTransport client whose every URL answers {"url": ...} after `delay` seconds.

    `http://down.test/` refuses the connection at once.
    """

    async def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == "down.test":
            raise httpx.ConnectError("connection refused", request=request)
        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            if cancelled is not None:
                cancelled.append(str(request.url))
            raise
        return httpx.Response(200, json={"url": str(request.url)})

    return httpx.AsyncClient(transport=httpx.MockTransport(handle))


URLS = {"a": "http://a.test/", "b": "http://b.test/", "c": "http://c.test/"}


async def test_three_slow_upstreams_take_as_long_as_one():
    async with upstream(delay=0.5) as client:
        started = time.perf_counter()
        results = await fetch_all(client, URLS, deadline=5)
        elapsed = time.perf_counter() - started

    assert results == {name: {"url": url} for name, url in URLS.items()}
    assert elapsed < 1.0  # one after another they would take 1.5 s


async def test_one_failure_cancels_the_others():
    cancelled = []
    async with upstream(delay=1, cancelled=cancelled) as client:
        with pytest.RaisesGroup(httpx.ConnectError):
            await fetch_all(client, {**URLS, "down": "http://down.test/"}, deadline=5)

    assert sorted(cancelled) == sorted(URLS.values())


async def test_the_deadline_cancels_everything():
    cancelled = []
    async with upstream(delay=1, cancelled=cancelled) as client:
        with pytest.raises(TimeoutError):
            await fetch_all(client, URLS, deadline=0.1)

    assert sorted(cancelled) == sorted(URLS.values())
