import asyncio
import uuid
from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.utils import timezone

from core.models import ApiToken
from tasks.models import WorkerHeartbeat
from tasks.tests import jobs
from tasks.worker import Worker

# No test waits longer than this for a worker.
WORKER_TIMEOUT = 10.0


# Seconds between a test worker's polls of the queue while idle.
POLL = 0.01


@pytest.fixture(autouse=True)
def fresh_jobs():
    jobs.reset()


@pytest.fixture
async def token_headers():
    user = await get_user_model().objects.acreate(username="tasker")
    _, raw = await ApiToken.aissue(user)
    return {"Authorization": f"Bearer {raw}", "Accept": "application/json"}


async def run_worker(worker: Worker | None = None, **options) -> Worker:
    """Run a worker (made from `options` unless given) until it stops by itself."""
    worker = worker or Worker(interval=POLL, **options)
    async with asyncio.timeout(WORKER_TIMEOUT):
        await worker.run()
    return worker


async def wait_for(event: asyncio.Event) -> None:
    async with asyncio.timeout(WORKER_TIMEOUT):
        await event.wait()


@pytest.fixture(autouse=True)
async def close_event_broker():
    """Close the broker a test's tasks opened in its loop, as the worker closes it when it stops.

    A task that reports progress in "worker" mode publishes itself, opening the
    broker (with Redis, a connection) in the test's loop; left open, it is only
    found by the garbage collector, later, in another test.
    """
    yield
    if apps.is_installed("events"):
        from events.broker import aclose_broker, running_broker

        broker = running_broker()
        if broker is not None and broker.loop is asyncio.get_running_loop():
            await aclose_broker()


def keep_broker_open(settings) -> None:
    """Workers of this test stop without closing the broker: close_event_broker does, after.

    Several workers in one loop share the process's broker; the first to stop
    would close it under the others, which reconnect to a closed pool and leak
    the connection.
    """
    close = getattr(settings, "TASKS_WORKER_CLOSE", [])
    settings.TASKS_WORKER_CLOSE = [path for path in close if not path.endswith(".aclose_broker")]


@pytest.fixture
async def event_broker(request, settings):
    """The project's event broker in this test's loop; skips when the project has no SSE."""
    if getattr(settings, "TASKS_PROGRESS_EVENTS", None) is None:
        pytest.skip("the project has no Server-Sent Events (use_sse=false): no progress events")
    from events.broker import aclose_broker, get_broker

    redis = "redis" in settings.SSE_BROKER.lower()
    if redis:
        request.getfixturevalue("redis_server")
        settings.SSE_STREAM_KEY = f"test:{uuid.uuid4().hex}"
    # The test's worker shares this loop, and the broker: the fixture closes it, not the worker.
    keep_broker_open(settings)
    broker = get_broker()
    yield broker
    if redis:
        await broker.redis.delete(settings.SSE_STREAM_KEY)
    await aclose_broker()


def heartbeat(worker_id: str, seconds_ago: float, hostname: str = "test") -> None:
    """A worker's heartbeat row, as if it was last seen `seconds_ago` seconds ago."""
    now = timezone.now()
    WorkerHeartbeat.objects.create(
        worker_id=worker_id,
        hostname=hostname,
        pid=7,
        started_at=now - timedelta(days=2),
        last_seen=now - timedelta(seconds=seconds_ago),
        running=2,
    )
