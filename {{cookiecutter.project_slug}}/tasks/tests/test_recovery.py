"""A lost worker's tasks come back (or fail after TASKS_MAX_ATTEMPTS); a stopped one loses none."""

import asyncio
import logging
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone
from django_tasks_db.models import DBTaskResult, get_date_max

from tasks.tests import jobs
from tasks.tests.conftest import POLL, WORKER_TIMEOUT, heartbeat, run_worker, wait_for
from tasks.worker import Worker, WorkerLost, recover_lost

pytestmark = pytest.mark.django_db(transaction=True)

LOST_AFTER = 60.0


def running_since(seconds: float, worker_ids: list[str]) -> DBTaskResult:
    """A task claimed `seconds` ago by the last of `worker_ids`."""
    result = jobs.add.enqueue(1, 2)
    DBTaskResult.objects.filter(id=result.id).update(
        status="RUNNING",
        started_at=timezone.now() - timedelta(seconds=seconds),
        worker_ids=worker_ids,
    )
    return DBTaskResult.objects.get(id=result.id)


def test_a_lost_workers_task_goes_back_in_the_queue(caplog):
    heartbeat("dead", seconds_ago=LOST_AFTER + 5)
    lost = running_since(LOST_AFTER + 10, ["dead"])
    never_seen = running_since(LOST_AFTER + 10, ["other", "vanished"])
    with caplog.at_level(logging.ERROR, logger="tasks.worker"):
        assert recover_lost("default", LOST_AFTER, max_attempts=3) == (2, 0)
    for task in (lost, never_seen):
        db_result = DBTaskResult.objects.get(id=task.id)
        assert db_result.status == "READY"
        assert db_result.run_after == get_date_max()  # due at once
        assert db_result.worker_ids == task.worker_ids  # its attempts still count
    assert DBTaskResult.objects.ready().count() == 2


def test_a_lost_task_out_of_attempts_fails_with_worker_lost(caplog):
    lost = running_since(LOST_AFTER + 10, ["w1", "w2", "dead"])
    with caplog.at_level(logging.ERROR, logger="tasks.worker"):
        assert recover_lost("default", LOST_AFTER, max_attempts=3) == (0, 1)
    db_result = DBTaskResult.objects.get(id=lost.id)
    assert db_result.status == "FAILED"
    assert db_result.exception_class_path == f"{WorkerLost.__module__}.WorkerLost"
    assert "Worker dead stopped answering" in db_result.traceback
    assert "attempt 3 of 3" in db_result.traceback


def test_the_tasks_of_a_live_worker_and_recent_claims_are_left_alone():
    heartbeat("alive", seconds_ago=1)
    long_running = running_since(LOST_AFTER * 10, ["alive"])
    # Claimed a moment ago by a worker whose first heartbeat is still to come.
    just_claimed = running_since(1, ["starting"])
    assert recover_lost("default", LOST_AFTER, max_attempts=3) == (0, 0)
    for task in (long_running, just_claimed):
        assert DBTaskResult.objects.get(id=task.id).status == "RUNNING"


async def test_a_worker_recovers_a_lost_task_and_runs_it(settings, caplog):
    settings.TASKS_WORKER_LOST_SECONDS = LOST_AFTER
    lost = await sync_to_async(running_since)(LOST_AFTER + 10, ["dead"])
    with caplog.at_level(logging.ERROR, logger="tasks.worker"):
        await run_worker(max_tasks=1)
    db_result = await DBTaskResult.objects.aget(id=lost.id)
    assert (db_result.status, db_result.return_value) == ("SUCCESSFUL", 3)
    assert len(db_result.worker_ids) == 2


async def started_worker(count: int, concurrency: int) -> tuple[Worker, asyncio.Task]:
    """A worker running `count` gated tasks, waiting for them to begin."""
    worker = Worker(concurrency=concurrency, interval=POLL)
    running = asyncio.create_task(run_worker(worker))
    await wait_for(jobs.when_started(count))
    return worker, running


async def statuses() -> list[str]:
    return [r.status async for r in DBTaskResult.objects.order_by("enqueued_at")]


async def test_stop_lets_running_tasks_finish_and_claims_no_more(caplog):
    for _ in range(3):
        await jobs.gated.aenqueue("finish")
    worker, running = await started_worker(2, concurrency=2)
    with caplog.at_level(logging.ERROR, logger="tasks.worker"):
        worker.stop()
        jobs.gate("finish").set()
        await running
    assert await statuses() == ["SUCCESSFUL", "SUCCESSFUL", "READY"]
    assert (len(jobs.finished), jobs.cancelled) == (2, [])


async def test_tasks_running_past_the_grace_go_back_in_the_queue(settings, caplog):
    settings.TASKS_SHUTDOWN_GRACE_SECONDS = 0.05
    for _ in range(2):
        await jobs.gated.aenqueue("never")
    worker, running = await started_worker(2, concurrency=2)
    with caplog.at_level(logging.ERROR, logger="tasks.worker"):
        worker.stop()
        await running
    assert len(jobs.cancelled) == 2
    assert await statuses() == ["READY", "READY"]
    async for db_result in DBTaskResult.objects.all():
        assert db_result.run_after == get_date_max()
        assert len(db_result.worker_ids) == 1
        assert db_result.finished_at is None


async def test_a_second_stop_cancels_running_tasks_at_once(settings, caplog):
    settings.TASKS_SHUTDOWN_GRACE_SECONDS = WORKER_TIMEOUT * 10  # never reached
    await jobs.gated.aenqueue("never")
    worker, running = await started_worker(1, concurrency=1)
    with caplog.at_level(logging.ERROR, logger="tasks.worker"):
        worker.stop()
        worker.stop()
        await running
    assert len(jobs.cancelled) == 1
    assert await statuses() == ["READY"]
