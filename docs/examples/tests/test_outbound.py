import asyncio

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


async def test_the_three_calls_wait_at_the_same_time():
    in_flight, most = 0, 0

    async def count_in_flight(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.1)
        in_flight -= 1
        return httpx.Response(200, json={"url": str(request.url)})

    async with httpx.AsyncClient(transport=httpx.MockTransport(count_in_flight)) as client:
        results = await fetch_all(client, URLS, deadline=5)

    assert results == {name: {"url": url} for name, url in URLS.items()}
    assert most == 3  # one after another, it would never exceed 1


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
