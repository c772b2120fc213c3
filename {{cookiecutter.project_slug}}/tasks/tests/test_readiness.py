"""/readyz reports whether a worker was seen recently, and never answers 503 for it."""

import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from tasks.models import WorkerHeartbeat

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def checks(settings):
    """The database and the worker only: the other checks need servers this test does not."""
    settings.READINESS_CHECKS = {
        "database": "core.readiness.database",
        "tasks_worker": "tasks.readiness.worker",
    }
    settings.TASKS_WORKER_LOST_SECONDS = 60.0


async def heartbeat(seconds_ago: float) -> None:
    now = timezone.now()
    await WorkerHeartbeat.objects.acreate(
        worker_id=f"w{seconds_ago}",
        hostname="test",
        pid=1,
        started_at=now - timedelta(hours=1),
        last_seen=now - timedelta(seconds=seconds_ago),
    )


@pytest.mark.parametrize("last_seen", [None, 61.0])
async def test_no_recent_worker_is_reported_but_still_200(async_client, last_seen, caplog):
    if last_seen is not None:
        await heartbeat(last_seen)
    with caplog.at_level(logging.ERROR, logger="core.readiness"):
        response = await async_client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert (body["checks"]["tasks_worker"]["ok"], body["checks"]["tasks_worker"]["error"]) == (
        False,
        "NoWorker",
    )


async def test_a_worker_seen_recently_is_ready(async_client):
    await heartbeat(61.0)
    await heartbeat(5.0)
    response = await async_client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["tasks_worker"]["ok"] is True


async def broken() -> None:
    raise ConnectionError("refused")


async def test_only_the_worker_check_is_advisory(async_client, settings, caplog):
    settings.READINESS_CHECKS = {**settings.READINESS_CHECKS, "other": f"{__name__}.broken"}
    with caplog.at_level(logging.ERROR, logger="core.readiness"):
        response = await async_client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["tasks_worker"]["ok"] is False
