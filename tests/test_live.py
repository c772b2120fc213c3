"""The all-features bake served by uvicorn as its README says, driven by real clients.

Two deployments: SQLite with the in-memory broker (one worker), and
PostgreSQL with Redis (two workers). Each test deploys its own, with its own
database and Redis servers, so faults stay inside the test.
"""

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import psutil
import pytest
from bakery import bake, run
from live import (
    DASHBOARD_DEADLINE,
    EventSource,
    deploy,
    join,
    publish,
    publish_when_ready,
    raw_get,
    receive_json,
    serve_commands,
    uvicorn_arguments,
    wait_for_status,
    worker_command,
)
from matrix import TEMPLATE_DIR
from servers import free_port, served_env, stop_process, uvicorn_server, wait_for_port
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

if TYPE_CHECKING:
    from playwright.sync_api import Page

BAKES = {
    "sqlite-memory": {"database": "sqlite", "broker": "memory"},
    "postgresql-redis": {"database": "postgresql", "broker": "redis"},
}
REDIS_BAKE = BAKES["postgresql-redis"]
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", TEMPLATE_DIR / "artifacts"))
# A sign the server logged an unhandled error.
TRACEBACK = "Traceback (most recent call last)"


def timings(record_property, **seconds: float) -> None:
    """Measured times, printed with the test's report (-rA) and kept in the junit XML."""
    for name, value in seconds.items():
        record_property(f"measured:{name}", round(value, 3))
        print(f"measured {name}: {value:.3f}s")


@pytest.fixture(params=list(BAKES))
def deployment(request, tmp_path, environments):
    with deploy(tmp_path, environments, **BAKES[request.param]) as deployed:
        yield deployed


@pytest.fixture
def redis_deployment(tmp_path, environments):
    with deploy(tmp_path, environments, **REDIS_BAKE) as deployed:
        yield deployed


def test_every_feature_over_the_network(deployment):
    asyncio.run(every_feature(deployment))
    output = deployment.server.output()
    assert TRACEBACK not in output, output
    assert "synchronous iterators" not in output
    server_log_is_json(output, workers=len(deployment.workers()))


def server_log_is_json(output: str, workers: int) -> None:
    """Every line the server wrote is one JSON record, uvicorn's own in every worker.

    Only a `--workers` supervisor's lines stay plain, as the baked README says: it
    never loads Django, so the project's LOGGING never reaches it.
    """
    lines = output.splitlines()
    plain = [line for line in lines if not line.startswith("{")]
    supervisor = ("Uvicorn running on", "Started parent process", "Stopping parent process")
    if workers > 1:
        plain = [line for line in plain if not any(s in line for s in supervisor)]
    assert not plain, output
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert all(record["logger"] for record in records), output
    started = [r for r in records if r["message"].startswith("Started server process")]
    assert len(started) == workers, output
    assert {r["logger"] for r in started} == {"uvicorn.error"}
    access = [r for r in records if r["logger"] == "uvicorn.access"]
    assert any('"GET /healthz HTTP/1.1" 200' in r["message"] for r in access), output


async def every_feature(deployment) -> None:
    url = deployment.url
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        await health(client, deployment)
        await articles_api(client, deployment)
        await files(client, deployment)
        await home_and_static(client)
        await dashboard(client)
        await events(client, deployment)
    await rooms(deployment)


async def health(client, deployment) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    expected = {"database"} | ({"redis", "channel_layer"} if deployment.redis else set())
    # Advisory: reported, never a reason for 503 (no worker runs beside this server).
    expected |= {"tasks_worker"}
    assert set(ready.json()["checks"]) == expected


async def articles_api(client, deployment) -> None:
    body = {"title": "Live", "content": "Served", "tags": ["live"], "published": True}
    assert (await client.post("/api/articles/", json=body)).status_code == 401
    bad_token = {"Authorization": "Bearer " + "x" * 43}
    assert (await client.post("/api/articles/", json=body, headers=bad_token)).status_code == 401
    not_json = await client.post(
        "/api/articles/",
        content=b"{not json",
        headers={**deployment.auth, "Content-Type": "application/json"},
    )
    assert not_json.status_code == 400, not_json.text
    missing_title = {"content": "no title"}
    invalid = await client.post("/api/articles/", json=missing_title, headers=deployment.auth)
    assert invalid.status_code == 422, invalid.text

    created = await client.post("/api/articles/", json=body, headers=deployment.auth)
    assert created.status_code == 201, created.text
    article = created.json()
    listed = (await client.get("/api/articles/")).json()
    assert [item["id"] for item in listed["items"]] == [article["id"]]
    detail = await client.get(f"/api/articles/{article['id']}/")
    assert detail.json()["title"] == "Live"
    assert (await client.get("/api/articles/999999/")).status_code == 404
    stats = (await client.get("/api/articles/stats/")).json()
    assert stats == {"total": 1, "published": 1, "by_tag": {"live": 1}}


async def files(client, deployment) -> None:
    (deployment.media / "hello.txt").write_text("hello, live\n")
    response = await client.get("/files/hello.txt")
    assert response.status_code == 200
    assert response.text == "hello, live\n"
    again = await client.get(
        "/files/hello.txt", headers={"If-None-Match": response.headers["ETag"]}
    )
    assert again.status_code == 304
    port = deployment.server.port
    for attempt in (
        "/files/../config/settings.py",
        "/files/%2e%2e/config/settings.py",
        "/files/..%2fconfig%2fsettings.py",
        "/files/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/files//etc/passwd",
        "/files/hello.txt/../../manage.py",
    ):
        assert raw_get(port, attempt) in (400, 404), attempt


async def home_and_static(client) -> None:
    home = await client.get("/")
    assert home.status_code == 200
    assert "Live events" in home.text
    assert "Chat room" in home.text
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', home.text)
    # collectstatic ran: the page links content-hashed names.
    assert any(re.search(r"/home\.[0-9a-f]{12}\.css$", asset) for asset in assets), assets
    for asset in assets:
        response = await client.get(asset, headers={"Accept-Encoding": "gzip"})
        assert response.status_code == 200, asset
        assert "immutable" in response.headers["Cache-Control"]
        assert response.headers.get("Content-Encoding") == "gzip"
        assert response.content


async def dashboard(client) -> None:
    started = time.monotonic()
    response = await client.get("/api/dashboard/")
    took = time.monotonic() - started
    assert response.status_code == 200
    sources = response.json()["sources"]
    assert sources["fast"]["data"] == {"path": "/fast"}
    assert (sources["slow"]["ok"], sources["slow"]["error"]) == (False, "timeout")
    assert (sources["broken"]["ok"], sources["broken"]["error"]) == (False, "http 500")
    assert took < DASHBOARD_DEADLINE + 1  # slack for a loaded machine; the slow source takes 3x


async def events(client, deployment) -> None:
    assert (await publish(client, deployment, "bad name", 1)).status_code == 400
    assert (
        await client.post("/events/publish/", json={"event": "x", "data": 1})
    ).status_code == 401
    async with EventSource(f"{deployment.url}/events/") as source:
        sent = [await publish_when_ready(client, deployment, "step", {"n": n}) for n in range(5)]
        received = await source.wait_for(5)
        assert [event.id for event in received] == sent
        assert [json.loads(event.data) for event in received] == [{"n": n} for n in range(5)]
        assert {event.event for event in received} == {"step"}
    # A client that left comes back with its last id: it gets exactly what it missed.
    missed = [await publish_when_ready(client, deployment, "step", {"n": n}) for n in range(5, 8)]
    source = EventSource(f"{deployment.url}/events/")
    source.last_id = sent[-1]
    async with source:
        assert [event.id for event in await source.wait_for(3)] == missed


async def rooms(deployment) -> None:
    async with join(deployment, "live") as first, join(deployment, "live") as second:
        await first.send(json.dumps({"message": "hello"}))
        for client in (first, second):
            message = await receive_json(client)
            assert (message["message"], message["user"], message["room"]) == (
                "hello",
                "anonymous",
                "live",
            )
        await second.send("not json")
        assert "error" in await receive_json(second)
        await second.send(json.dumps({"message": "still here"}))
        assert (await receive_json(first))["message"] == "still here"
    with pytest.raises(InvalidStatus) as refused:
        async with join(deployment, "live", origin="https://evil.example"):
            pass
    assert refused.value.response.status_code == 403


@contextlib.contextmanager
def browser_page() -> Iterator[tuple["Page", list[str]]]:
    """A page in Debian's Chromium (never a downloaded browser), and the console errors it logs.

    Skips without Chromium; fails instead when CI=true.
    """
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium not found (required when CI=true): apt-get install chromium")
        pytest.skip("chromium not found: apt-get install chromium")
    console_errors = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        try:
            page = browser.new_page()
            page.on(
                "console", lambda m: console_errors.append(m.text) if m.type == "error" else None
            )
            yield page, console_errors
        finally:
            browser.close()


def test_a_browser_sees_events_and_chat(deployment, request):
    from playwright.sync_api import expect

    with browser_page() as (page, console_errors):
        page.goto(deployment.url + "/")
        events = page.locator("#events-panel")
        chat = page.locator("#rooms-panel")
        expect(events.locator(".state")).to_have_text("open", timeout=15_000)
        expect(chat.locator(".state")).to_have_text("open", timeout=15_000)

        # The page gives the README's command for this server; what it publishes shows up.
        expect(events.locator("code.publish")).to_contain_text(
            f"curl -X POST {deployment.url}/events/publish/"
        )
        with httpx.Client(timeout=10) as client:
            response = client.post(
                f"{deployment.url}/events/publish/",
                json={"event": "order.paid", "data": {"id": 5}},
                headers=deployment.auth,
            )
        assert response.status_code == 202
        expect(events.locator(".log li").first).to_contain_text(
            f'{response.json()["id"]} order.paid{{"id":5}}', timeout=15_000
        )

        chat.locator("input[name=message]").fill("hello from chromium")
        chat.locator("form.send button").click()
        expect(chat.locator(".log li").first).to_contain_text("hello from chromium", timeout=15_000)
        expect(chat.locator(".log li").first).to_contain_text("anonymous")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=ARTIFACTS / f"live-{request.node.callspec.id}.png", full_page=True)
        # A CSP violation or a failed script shows up as a console error.
        assert console_errors == []
        if deployment.redis:
            panels_say_why_redis_is_down(page, deployment, expect)
            # The refused requests are logged; a script error would be too.
            refused = ("Failed to load resource: ", "WebSocket connection to ")
            assert [e for e in console_errors if not e.startswith(refused)] == []


@contextlib.contextmanager
def task_worker(python: Path, deployment) -> Iterator[subprocess.Popen]:
    """`manage.py worker` beside the server, in its environment; SIGTERM, then SIGKILL, on exit."""
    log = deployment.project.parent / "worker.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [python, *worker_command(deployment.project)],
            cwd=deployment.project,
            env=deployment.env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        stop_process(process, timeout=30)


def test_a_browser_sees_a_task_s_progress(deployment, environments, request):
    """The home page's tasks panel shows the worker, and a task's progress bar filling live.

    The events come through the broker from the worker (Redis) or relayed by
    the web process from the database (memory): the panel shows both alike.
    """
    from playwright.sync_api import expect

    python = environments.python_for(deployment.project)
    with (
        task_worker(python, deployment) as worker,
        httpx.Client(base_url=deployment.url, headers=deployment.auth, timeout=10) as client,
        browser_page() as (page, console_errors),
    ):
        # The page asks /readyz once on load: let the worker's first heartbeat come first.
        deadline = time.monotonic() + 30
        while not client.get("/readyz").json()["checks"]["tasks_worker"]["ok"]:
            assert worker.poll() is None, "the worker exited"
            assert time.monotonic() < deadline, "no worker heartbeat in 30 s"
            time.sleep(0.2)
        page.goto(deployment.url + "/")
        panel = page.locator("#tasks-panel")
        expect(panel.locator(".state")).to_have_text("open", timeout=15_000)
        expect(panel.locator(".worker")).to_have_text("A worker is running.")
        expect(panel.locator("code.enqueue")).to_contain_text(
            f"curl -X POST {deployment.url}/tasks/survey/"
        )

        enqueued = client.post("/tasks/survey/")
        assert enqueued.status_code == 202, enqueued.text
        row = panel.locator(f'li[data-task-id="{enqueued.json()["id"]}"]')
        expect(row).to_have_attribute("data-status", "SUCCESSFUL", timeout=30_000)
        expect(row.locator(".status")).to_have_text("SUCCESSFUL")
        expect(row.locator(".meta")).to_contain_text("survey")
        # The bar's max is the `total` that only task.progress events carry: they arrived.
        checks = client.get(enqueued.headers["Location"]).json()["result"]["checks"]
        bar = row.locator("progress")
        assert bar.evaluate("bar => [bar.value, bar.max]") == [len(checks), len(checks)]
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(
            path=ARTIFACTS / f"live-tasks-{request.node.callspec.id}.png", full_page=True
        )
        assert console_errors == []


def panels_say_why_redis_is_down(page, deployment, expect) -> None:
    """With Redis stopped, a fresh page's panels say what /readyz says; then they recover."""
    deployment.redis.stop()
    try:
        page.reload()
        for panel in ("#events-panel", "#rooms-panel"):
            problem = page.locator(f"{panel} .problem")
            expect(problem).to_contain_text("/readyz reports redis: ", timeout=15_000)
            expect(page.locator(f"{panel} .state")).not_to_have_text("open")
        expect(page.locator("#events-panel .problem")).to_contain_text(
            "the event broker is unavailable"
        )
        page.screenshot(path=ARTIFACTS / "live-redis-down.png", full_page=True)
    finally:
        deployment.redis.start()
    # Both panels reconnect by themselves (backoff: 3 s then 6 s for events, 1, 2, 4 s for chat).
    for panel in ("#events-panel", "#rooms-panel"):
        expect(page.locator(f"{panel} .state")).to_have_text("open", timeout=20_000)
        expect(page.locator(f"{panel} .problem")).to_be_hidden()


def test_a_redis_restart_loses_no_event(redis_deployment, record_property):
    asyncio.run(redis_restart(redis_deployment, record_property))


async def redis_restart(deployment, record_property) -> None:
    redis = deployment.redis
    async with (
        httpx.AsyncClient(base_url=deployment.url, timeout=10) as client,
        EventSource(f"{deployment.url}/events/") as source,
        join(deployment, "restart") as chat,
    ):
        before = await publish_when_ready(client, deployment, "before", 0)
        await source.wait_for(1)
        stopped = time.monotonic()
        redis.stop()
        down = await wait_for_status(client, "/readyz", 503)
        assert (await publish(client, deployment, "lost", 0)).status_code == 503
        redis.start()
        up = await wait_for_status(client, "/readyz", 200)
        after = [await publish_when_ready(client, deployment, "after", n) for n in range(5)]
        recovered = time.monotonic() - stopped
        received = await source.wait_for(6)
        assert [event.id for event in received] == [before, *after]

        # The old socket lost its room with Redis' data; a new one chats again.
        chat_fate = "open"
        with contextlib.suppress(ConnectionClosed, TimeoutError):
            await chat.send(json.dumps({"message": "anyone?"}))
            await receive_json(chat, 2)
            chat_fate = "open and working"
        if chat.close_code is not None:
            chat_fate = f"closed {chat.close_code}"
        # Never deaf: either it still works or it was closed so that the client reconnects.
        assert chat_fate in ("open and working", "closed 1011"), chat_fate
        async with join(deployment, "restart") as again, join(deployment, "restart") as other:
            await again.send(json.dumps({"message": "back"}))
            assert (await receive_json(other))["message"] == "back"
    timings(
        record_property,
        readyz_503_after_stop=down,
        readyz_200_after_start=up,
        publish_to_delivery_recovered=recovered,
    )
    print(f"websocket open across the restart: {chat_fate}; SSE reconnects: {source.connects - 1}")


def test_a_worker_restart_finishes_requests_and_ends_streams_cleanly(
    redis_deployment, record_property
):
    asyncio.run(worker_restart(redis_deployment, record_property))


async def slow_post(client, deployment, pause: float, started: asyncio.Event):
    """POST an article whose body arrives in two parts, `pause` seconds apart."""
    body = json.dumps({"title": "slow", "content": "x", "published": True}).encode()

    async def parts():
        yield body[:10]
        started.set()
        await asyncio.sleep(pause)
        yield body[10:]

    return await client.post(
        "/api/articles/",
        content=parts(),
        headers={**deployment.auth, "Content-Type": "application/json"},
    )


async def worker_restart(deployment, record_property) -> None:
    workers = deployment.workers()
    assert len(workers) == 2, workers
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(
            httpx.AsyncClient(base_url=deployment.url, timeout=30)
        )
        # Streams and sockets on both workers.
        sources, sockets = [], []
        for _ in range(40):
            source = await stack.enter_async_context(EventSource(f"{deployment.url}/events/"))
            sources.append(source)
            sockets.append(await stack.enter_async_context(join(deployment, "restart")))
            on = {deployment.worker_of(s.local_port) for s in sources}
            on_ws = {deployment.worker_of(ws.local_address[1]) for ws in sockets}
            if on == on_ws == {w.pid for w in workers}:
                break
        target = workers[0].pid
        on_target = [s for s in sources if deployment.worker_of(s.local_port) == target]
        elsewhere = [s for s in sources if s not in on_target]
        ws_on_target = [ws for ws in sockets if deployment.worker_of(ws.local_address[1]) == target]
        ws_elsewhere = [ws for ws in sockets if ws not in ws_on_target]
        assert on_target and elsewhere and ws_on_target and ws_elsewhere

        # Requests in flight: their bodies are half sent when the worker is told to stop.
        posts, posts_on_target = [], 0
        known = {s.local_port for s in sources} | {ws.local_address[1] for ws in sockets}
        while posts_on_target < 3 and len(posts) < 40:
            started = asyncio.Event()
            posts.append(asyncio.create_task(slow_post(client, deployment, 3.0, started)))
            await started.wait()
            await asyncio.sleep(0.05)
            posts_on_target = len(deployment.client_ports(target) - known)
        assert posts_on_target == 3
        signalled = time.monotonic()
        os.kill(target, signal.SIGTERM)
        responses = await asyncio.gather(*posts)
        assert [r.status_code for r in responses] == [201] * len(posts), [r.text for r in responses]

        # Streams on the stopping worker end cleanly at once; the others stay open.
        async with asyncio.timeout(10):
            while not all(s.clean_ends for s in on_target):
                await asyncio.sleep(0.02)
        streams_ended = max(s.clean_ends[0] for s in on_target) - signalled
        assert not any(s.failures for s in on_target), [s.failures for s in on_target]
        assert not any(s.clean_ends for s in elsewhere)
        # Its websockets are closed with 1012 (service restart); the others stay open.
        for ws in ws_on_target:
            await asyncio.wait_for(ws.wait_closed(), 10)
            assert ws.close_code == 1012
        assert all(ws.close_code is None for ws in ws_elsewhere)

        # The supervisor starts a new worker in its place.
        async with asyncio.timeout(30):
            while len(deployment.workers()) != 2 or target in {w.pid for w in deployment.workers()}:
                await asyncio.sleep(0.1)
        replaced = time.monotonic() - signalled
        (new_worker,) = {w.pid for w in deployment.workers()} - {w.pid for w in workers}

        # Events published now reach every stream, wherever it reconnected.
        sent = [await publish_when_ready(client, deployment, "after", n) for n in range(3)]
        for source in sources:
            assert [e.id for e in await source.wait_for(3)] == sent
        # The new worker serves: a fresh stream lands on it once it has loaded the app.
        async with asyncio.timeout(30):
            while True:
                async with EventSource(f"{deployment.url}/events/") as source:
                    if deployment.worker_of(source.local_port) == new_worker:
                        break
                await asyncio.sleep(0.05)
    timings(
        record_property,
        streams_ended_after_sigterm=streams_ended,
        in_flight_posts_finished=max(r.elapsed.total_seconds() for r in responses),
        worker_replaced=replaced,
    )
    print(f"in-flight POSTs on the stopped worker: {posts_on_target} of {len(posts)}")
    output = deployment.server.output()
    assert "Child process" in output  # the supervisor noticed and replaced it
    # The stopped worker ran the lifespan shutdown (the httpx client was closed).
    assert "Application shutdown complete." in output


def test_postgres_down_answers_503_and_recovers(redis_deployment, record_property):
    asyncio.run(postgres_outage(redis_deployment, record_property))


async def clients_per_worker(deployment) -> dict[int, httpx.AsyncClient]:
    """One client per worker, each on one kept-alive connection: it always reaches its worker."""
    clients: dict[int, httpx.AsyncClient] = {}
    workers = len(deployment.workers())
    for _ in range(50):
        client = httpx.AsyncClient(
            base_url=deployment.url, timeout=30, limits=httpx.Limits(max_connections=1)
        )
        response = await client.get("/healthz")
        port = response.extensions["network_stream"].get_extra_info("client_addr")[1]
        worker = deployment.worker_of(port)
        if worker is None or worker in clients:
            await client.aclose()
        else:
            clients[worker] = client
        if len(clients) == workers:
            return clients
    raise AssertionError(f"reached {len(clients)} of {workers} workers in 50 connections")


async def timed_get(client: httpx.AsyncClient, path: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await client.get(path)
    return response, time.monotonic() - started


def kill_postmaster(postgres) -> None:
    """kill -9 the postmaster, as a crash would; its backends then exit and cut their clients."""
    pid = int((postgres.data / "postmaster.pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)


def start_after_crash(postgres) -> None:
    """Start again (pg_ctl -w returns once connections are accepted); retried while the
    killed server's backends still hold its shared memory."""
    for attempt in range(20):
        try:
            postgres.start()
            return
        except subprocess.CalledProcessError:
            if attempt == 19:
                raise
            time.sleep(0.25)


async def postgres_outage(deployment, record_property) -> None:
    """kill -9 under two workers: 503 in under 1 s while down, each worker back within 3 s."""
    clients = await clients_per_worker(deployment)
    assert len(clients) == 2
    try:
        for client in clients.values():
            assert (await client.get("/api/articles/")).status_code == 200
        kill_postmaster(deployment.postgres)
        slowest_503 = 0.0
        # The first request on each worker finds the server down; the next ones know it.
        for _ in range(5):
            for client in clients.values():
                down, took = await timed_get(client, "/api/articles/")
                assert down.status_code == 503, down.text
                assert down.json() == {"detail": "The database is unavailable; retry shortly."}
                assert down.headers["Retry-After"]
                slowest_503 = max(slowest_503, took)
        client = next(iter(clients.values()))
        write = await client.post(
            "/api/articles/", json={"title": "t", "content": "c"}, headers=deployment.auth
        )
        assert write.status_code == 503
        ready, readyz_took = await timed_get(client, "/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"]["ok"] is False
        assert (await client.get("/healthz")).status_code == 200
        start_after_crash(deployment.postgres)
        accepting = time.monotonic()
        back = await asyncio.gather(
            *(wait_for_status(c, "/api/articles/", 200, seconds=30) for c in clients.values())
        )
        created = await client.post(
            "/api/articles/", json={"title": "t", "content": "c"}, headers=deployment.auth
        )
        assert created.status_code == 201
        assert (await client.get("/readyz")).status_code == 200
        readyz_back = time.monotonic() - accepting
        # Whether each client is still on its worker, which makes the times per worker.
        reached = {}
        for worker, c in clients.items():
            response = await c.get("/healthz")
            port = response.extensions["network_stream"].get_extra_info("client_addr")[1]
            reached[worker] = deployment.worker_of(port)
    finally:
        for c in clients.values():
            await c.aclose()
    timings(
        record_property,
        slowest_503_while_down=slowest_503,
        readyz_503_while_down=readyz_took,
        **{f"worker_{n}_200_after_restart": seconds for n, seconds in enumerate(back, 1)},
        readyz_after_restart=readyz_back,
    )
    # While the server is known to be down a request fails at once, not at the pool timeout
    # (10 s); each worker serves again within a few probe intervals of the restart.
    assert slowest_503 < 1, slowest_503
    assert all(worker == pid for worker, pid in reached.items()), reached
    assert readyz_took < 1, readyz_took
    assert max(back) < 3, back
    # Readiness logs why its check failed; no request ever got a 500.
    assert 'HTTP/1.1" 500' not in deployment.server.output(), deployment.server.output()


def test_200_streams_and_100_sockets_under_load(redis_deployment, record_property):
    asyncio.run(load(redis_deployment, record_property))


async def load(deployment, record_property) -> None:
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(
            httpx.AsyncClient(base_url=deployment.url, timeout=30)
        )
        started = time.monotonic()
        sources = [EventSource(f"{deployment.url}/events/") for _ in range(200)]
        await asyncio.gather(*(stack.enter_async_context(s) for s in sources))
        connected = time.monotonic() - started
        assert len({deployment.worker_of(s.local_port) for s in sources}) == 2

        started = time.monotonic()
        sent = [await publish_when_ready(client, deployment, "load", n) for n in range(100)]
        for source in sources:
            received = await source.wait_for(100, seconds=60)
            assert [event.id for event in received] == sent
            assert source.connects == 1
        delivered = time.monotonic() - started

        sockets = await asyncio.gather(
            *(stack.enter_async_context(join(deployment, "crowd")) for _ in range(100))
        )
        # The consumer joins the room before it accepts: every socket is in it now.
        started = time.monotonic()
        await sockets[0].send(json.dumps({"message": "to everyone"}))
        messages = await asyncio.gather(*(receive_json(s, 30) for s in sockets))
        broadcast = time.monotonic() - started
        assert {m["message"] for m in messages} == {"to everyone"}
    timings(
        record_property,
        connect_200_streams=connected,
        publish_and_deliver_100_events_to_200_streams=delivered,
        broadcast_to_100_sockets=broadcast,
    )
    assert TRACEBACK not in deployment.server.output(), deployment.server.output()


def test_static_files_under_debug_without_collectstatic(tmp_path, environments):
    """The development setup: files found in the apps, unhashed, no sync-iterator warning."""
    project = bake(tmp_path)
    python = environments.python_for(project)
    env = served_env(tmp_path / "dev.sqlite3", DJANGO_DEBUG="true")
    run([python, "manage.py", "migrate", "--noinput"], cwd=project, env=env)
    with uvicorn_server(python, project, env) as server, httpx.Client(timeout=10) as client:
        home = client.get(f"{server.url}/")
        assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', home.text)
        assert "/static/core/home.css" in assets
        for asset in [*assets, "/static/admin/css/base.css"]:
            response = client.get(f"{server.url}{asset}")
            assert response.status_code == 200, asset
            assert response.content
    assert "synchronous iterators" not in server.output()
    assert TRACEBACK not in server.output(), server.output()


def test_manage_py_runserver_serves_every_feature_and_reloads(
    tmp_path, environments, record_property
):
    """`manage.py runserver`, as a Django developer types it: the ASGI application under
    uvicorn, with events and websockets, reloading on a saved change, stopped by Ctrl+C."""
    project = bake(tmp_path / "bake")
    python = environments.python_for(project)
    env = served_env(tmp_path / "dev.sqlite3", DJANGO_DEBUG="true")
    run([python, "manage.py", "migrate", "--noinput"], cwd=project, env=env)
    created = run([python, "manage.py", "create_api_token", "dev"], cwd=project, env=env)
    port = free_port()
    log = tmp_path / "runserver.log"
    with log.open("w") as output:
        # A session of its own: whatever a failure leaves behind is killed as a group.
        process = subprocess.Popen(
            [python, "manage.py", "runserver", f"127.0.0.1:{port}"],
            cwd=project,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_port(port, timeout=60)
        asyncio.run(
            runserver_session(
                process, project, port, created.stdout.split()[-1], log, record_property
            )
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    printed = log.read_text()
    assert "Starting ASGI development server (uvicorn, auto-reload)" in printed, printed
    assert "Reloading..." in printed, printed
    assert TRACEBACK not in printed, printed
    assert "synchronous iterators" not in printed, printed


async def runserver_session(process, project, port, token, log, record_property) -> None:
    url = f"http://127.0.0.1:{port}"
    async with (
        httpx.AsyncClient(base_url=url, timeout=10) as client,
        EventSource(f"{url}/events/") as source,
        connect(f"ws://127.0.0.1:{port}/ws/rooms/dev/", origin=url, open_timeout=10) as room,
    ):
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        published = await client.post(
            "/events/publish/",
            json={"event": "order.paid", "data": {"id": 5}},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert published.status_code == 202, published.text
        [event] = await source.wait_for(1)
        assert (event.event, json.loads(event.data)) == ("order.paid", {"id": 5})
        await room.send(json.dumps({"message": "hello"}))
        assert (await receive_json(room))["message"] == "hello"

        # A saved change: the server process is replaced; the stream ends and
        # resumes, the socket is closed as for a restart.
        started = time.monotonic()
        views = project / "core" / "views.py"
        views.write_text(views.read_text() + "\n# edited\n")
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(room.recv(), 30)
        assert closed.value.rcvd.code == 1012
        async with asyncio.timeout(30):
            while source.connects < 2:
                await asyncio.sleep(0.05)
        reloaded = time.monotonic() - started
        assert source.clean_ends, source.failures
        assert (await client.get("/healthz")).status_code == 200

        # Ctrl+C, with a stream still open: the reloader and its server exit.
        supervisor = psutil.Process(process.pid)
        processes = [supervisor, *supervisor.children(recursive=True)]
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        returncode = await asyncio.to_thread(process.wait, 15)
        stopped = time.monotonic() - started
        assert returncode == 0, log.read_text()
        _, alive = await asyncio.to_thread(psutil.wait_procs, processes, 5)
        assert not alive, alive
    timings(record_property, runserver_reload=reloaded, runserver_stop=stopped)


def test_a_proxy_listed_in_forwarded_allow_ips_is_trusted_with_https(tmp_path, environments):
    """Behind a TLS proxy on another address, the README's command trusts its
    X-Forwarded-Proto only when FORWARDED_ALLOW_IPS lists it. 127.0.0.2 plays the
    proxy's host (every 127/8 address is this machine's), 127.0.0.3 any other
    peer: unlisted, its `https` is ignored and SECURE_SSL_REDIRECT redirects."""
    project = bake(tmp_path / "bake", use_sse=False, use_channels=False, use_httpx=False)
    python = environments.python_for(project)
    env = served_env(
        tmp_path / "proxy.sqlite3",
        DJANGO_SECURE_SSL_REDIRECT="true",
        FORWARDED_ALLOW_IPS="127.0.0.2",
    )
    *setup, serve = serve_commands(project, env)
    trusted = serve.index("--forwarded-allow-ips") + 1
    assert serve[trusted] == "127.0.0.2"
    for command in setup:
        run([python, *command[3:]], cwd=project, env=env)
    https = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    with uvicorn_server(python, project, env, *uvicorn_arguments(serve)) as server:

        def get(peer: str) -> httpx.Response:
            transport = httpx.HTTPTransport(local_address=peer)
            with httpx.Client(transport=transport, timeout=10) as client:
                return client.get(f"{server.url}/auth/whoami/", headers=https)

        assert get("127.0.0.2").status_code == 401  # served, as over https: no token
        redirected = get("127.0.0.3")
        assert redirected.status_code == 301
        assert redirected.headers["Location"].startswith("https://")
    assert TRACEBACK not in server.output(), server.output()
