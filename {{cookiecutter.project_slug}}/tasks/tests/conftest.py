import asyncio
import uuid
from datetime import timedelta

import pytest
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
    close = getattr(settings, "TASKS_WORKER_CLOSE", [])
    settings.TASKS_WORKER_CLOSE = [path for path in close if not path.endswith(".aclose_broker")]
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
