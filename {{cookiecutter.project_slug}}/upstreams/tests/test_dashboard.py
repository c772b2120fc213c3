import asyncio
import json
import time

import httpx
import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import AsyncRequestFactory

from core.tests.test_settings import read_settings
from upstreams.views import dashboard

FAST = "http://fast.test/status"
SLOW = "http://slow.test/status"
BROKEN = "http://broken.test/status"


def json_response(data, status=200):
    return lambda request: httpx.Response(status, json=data)


def after(seconds, response):
    async def handler(request):
        await asyncio.sleep(seconds)
        return response

    return handler


@pytest.fixture
def sources(settings, upstream):
    def configure(**urls):
        settings.DASHBOARD_SOURCES = ",".join(f"{name}={url}" for name, url in urls.items())
        upstream.install()

    return configure


async def test_each_source_reports_its_own_outcome(async_client, settings, upstream, sources):
    settings.DASHBOARD_TIMEOUT = 0.5
    upstream.routes = {
        FAST: json_response({"up": True}),
        BROKEN: json_response({"detail": "boom"}, status=500),
        "http://text.test/": lambda request: httpx.Response(200, text="plain"),
        "http://badjson.test/": lambda request: httpx.Response(
            200, content=b"{nope", headers={"content-type": "application/json"}
        ),
        SLOW: after(5, httpx.Response(200)),
        "http://moved.test/": lambda request: httpx.Response(302, headers={"Location": "/x"}),
    }
    sources(
        fast=FAST,
        broken=BROKEN,
        text="http://text.test/",
        badjson="http://badjson.test/",
        slow=SLOW,
        down="http://down.test/",
        moved="http://moved.test/",
    )
    started = time.perf_counter()
    response = await async_client.get("/api/dashboard/")
    took = time.perf_counter() - started
    assert response.status_code == 200
    results = response.json()["sources"]
    assert results["fast"] | {"elapsed_ms": 0} == {
        "ok": True,
        "status": 200,
        "data": {"up": True},
        "elapsed_ms": 0,
    }
    assert results["text"]["data"] == "plain"
    failures = {name: r["error"] for name, r in results.items() if not r["ok"]}
    assert failures == {
        "broken": "http 500",
        "badjson": "invalid json",
        "slow": "timeout",
        "down": "connect error",
        "moved": "http 302",
    }
    assert all(isinstance(r["elapsed_ms"], float) for r in results.values())
    assert took < 2.5  # the 0.5 s deadline plus room for a busy machine; not the 5 s source


async def test_sources_run_concurrently(async_client, upstream, sources):
    # Each upstream answers only once all three are waiting: called one after
    # another, the first would wait until the deadline and fail.
    everyone_called = asyncio.Barrier(3)

    async def answer_together(request):
        await everyone_called.wait()
        return httpx.Response(200, json=str(request.url))

    upstream.routes = {f"http://s{n}.test/": answer_together for n in range(3)}
    sources(**{f"s{n}": f"http://s{n}.test/" for n in range(3)})
    response = await async_client.get("/api/dashboard/")
    assert {name: r["ok"] for name, r in response.json()["sources"].items()} == {
        "s0": True,
        "s1": True,
        "s2": True,
    }


async def test_concurrency_is_bounded(async_client, settings, upstream, sources):
    settings.DASHBOARD_CONCURRENCY = 1
    in_flight, most = 0, 0

    async def count_in_flight(request):
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.01)  # room for another call to start, were it allowed
        in_flight -= 1
        return httpx.Response(200)

    upstream.routes = {f"http://s{n}.test/": count_in_flight for n in range(3)}
    sources(**{f"s{n}": f"http://s{n}.test/" for n in range(3)})
    response = await async_client.get("/api/dashboard/")
    assert all(r["ok"] for r in response.json()["sources"].values())
    assert most == 1  # one at a time


async def test_a_503_is_retried_until_it_succeeds(async_client, upstream, sources):
    answers = iter([httpx.Response(503), httpx.Response(502), httpx.Response(200, json="ok")])
    upstream.routes = {FAST: lambda request: next(answers)}
    sources(fast=FAST)
    result = (await async_client.get("/api/dashboard/")).json()["sources"]["fast"]
    assert result["ok"] is True
    assert upstream.calls == [FAST] * 3


async def test_retries_stop_after_the_configured_attempts(
    async_client, settings, upstream, sources
):
    settings.HTTPX_RETRY_ATTEMPTS = 3
    upstream.routes = {BROKEN: lambda request: httpx.Response(503)}
    sources(broken=BROKEN)
    result = (await async_client.get("/api/dashboard/")).json()["sources"]["broken"]
    assert result["error"] == "http 503"
    assert upstream.calls == [BROKEN] * 3


async def test_a_500_is_not_retried(async_client, upstream, sources):
    upstream.routes = {BROKEN: json_response({}, status=500)}
    sources(broken=BROKEN)
    await async_client.get("/api/dashboard/")
    assert upstream.calls == [BROKEN]


async def test_connect_errors_are_retried(async_client, upstream, sources):
    sources(down="http://down.test/")
    result = (await async_client.get("/api/dashboard/")).json()["sources"]["down"]
    assert result["error"] == "connect error"
    assert len(upstream.calls) == 3


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "DASHBOARD_SOURCES is empty"),
        ("noequals", "is not name=url"),
        ("a b=http://x.test/", "is not name=url"),
        ("a=ftp://x.test/", "is not an http"),
        ("a=http://x.test/,a=http://y.test/", "a appears twice"),
        ("a=/healthz,a=http://y.test/", "a appears twice"),
        ("a=//x.test/healthz", "is not an http"),
    ],
)
def test_a_bad_sources_setting_fails_the_system_check(settings, value, problem):
    settings.DASHBOARD_SOURCES = value
    with pytest.raises(SystemCheckError, match=problem):
        call_command("check")


def test_the_default_settings_pass_the_check():
    call_command("check")


async def dashboard_served_on(server: tuple) -> dict:
    """The dashboard's sources for a request uvicorn accepted on `server`, (host, port).

    The test client always says ("testserver", "80"), so the view is called directly.
    """
    request = AsyncRequestFactory().get("/api/dashboard/")
    request.scope["server"] = server
    response = await dashboard(request)
    assert response.status_code == 200
    return json.loads(response.content)["sources"]


@pytest.mark.parametrize(
    ("server", "called"),
    [
        (("127.0.0.1", 8123), "http://127.0.0.1:8123/healthz"),
        (("::1", 9000), "http://[::1]:9000/healthz"),
    ],
)
async def test_the_default_source_is_this_server_on_the_port_it_is_served_on(
    settings, upstream, server, called
):
    # The default as a process without DASHBOARD_SOURCES in its environment reads it.
    settings.DASHBOARD_SOURCES = read_settings(DJANGO_DEBUG="true")["DASHBOARD_SOURCES"]
    upstream.routes = {called: json_response({"status": "ok"})}
    upstream.install()
    assert (await dashboard_served_on(server))["self"]["data"] == {"status": "ok"}
    assert upstream.calls == [called]


async def test_a_path_source_needs_a_port_to_be_called_on(upstream, sources):
    sources(self="/healthz", fast=FAST)
    upstream.routes = {FAST: json_response({"up": True})}
    # Served on a unix socket: uvicorn's scope has a path and no port.
    results = await dashboard_served_on(("/run/app.sock", None))
    assert results["self"]["error"] == "no server port for a path: use a URL"
    assert results["fast"]["ok"]
    assert upstream.calls == [FAST]


def five_unavailable_sources(upstream, sources) -> list[str]:
    urls = [f"http://s{n}.test/" for n in range(5)]
    upstream.routes = {url: lambda request: httpx.Response(503) for url in urls}
    sources(**{f"s{n}": url for n, url in enumerate(urls)})
    return urls


async def test_concurrent_requests_share_one_round_of_upstream_calls(
    async_client, settings, upstream, sources
):
    settings.HTTPX_RETRY_ATTEMPTS = 3
    five_unavailable_sources(upstream, sources)
    responses = await asyncio.gather(*(async_client.get("/api/dashboard/") for _ in range(20)))
    assert {r.json()["sources"]["s0"]["error"] for r in responses} == {"http 503"}
    assert len(upstream.calls) == 5 * 3  # sources x attempts, not 20 times that


async def test_a_round_answers_until_the_cache_expires(async_client, settings, upstream, sources):
    settings.HTTPX_RETRY_ATTEMPTS = 3
    settings.DASHBOARD_CACHE_SECONDS = 60
    five_unavailable_sources(upstream, sources)
    await async_client.get("/api/dashboard/")
    await async_client.get("/api/dashboard/")
    assert len(upstream.calls) == 15  # the second request was answered from the first round
    settings.DASHBOARD_CACHE_SECONDS = 0  # the round is now older than the cache keeps one
    await async_client.get("/api/dashboard/")
    assert len(upstream.calls) == 30


async def test_a_cancelled_request_does_not_cancel_the_round_for_others(
    async_client, upstream, sources
):
    called, release = asyncio.Event(), asyncio.Event()

    async def answer_when_released(request):
        called.set()
        await release.wait()
        return httpx.Response(200, json="ok")

    upstream.routes = {FAST: answer_when_released}
    sources(fast=FAST)
    first = asyncio.create_task(async_client.get("/api/dashboard/"))
    async with asyncio.timeout(5):
        await called.wait()
    first.cancel()  # its client went away while the round was running
    with pytest.raises(asyncio.CancelledError):
        await first
    second = asyncio.create_task(async_client.get("/api/dashboard/"))
    release.set()
    result = (await second).json()["sources"]["fast"]
    assert (result["ok"], result["data"]) == (True, "ok")
    assert upstream.calls == [FAST]  # the first round went on, and served the second request


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,  # RecursionError, not a ValueError
        b'{"load": NaN}',  # the dashboard's answer would carry NaN, which is not JSON
        b'{"load": 1e999}',  # Infinity
    ],
)
async def test_json_the_dashboard_cannot_carry_is_invalid_json(
    async_client, upstream, sources, body
):
    json_type = {"content-type": "application/json"}
    upstream.routes = {FAST: lambda request: httpx.Response(200, headers=json_type, content=body)}
    sources(fast=FAST)
    response = await async_client.get("/api/dashboard/")
    assert response.status_code == 200
    assert response.json()["sources"]["fast"]["error"] == "invalid json"


@pytest.mark.parametrize(
    ("setting", "value", "problem"),
    [
        ("DASHBOARD_CACHE_SECONDS", -1, "upstreams.E004"),
        ("HTTPX_MAX_RESPONSE_BYTES", 0, "upstreams.E005"),
    ],
)
def test_a_bad_limit_fails_the_system_check(settings, setting, value, problem):
    setattr(settings, setting, value)
    with pytest.raises(SystemCheckError, match=problem):
        call_command("check")
