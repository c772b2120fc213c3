"""The worker on the real backend: results, failures, concurrency, no task run twice."""

import asyncio
import contextlib
import logging
import os
import threading

import pytest
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.db import connections
from django.db.models.signals import post_save
from django_tasks_db.models import DBTaskResult

from tasks.models import WorkerHeartbeat
from tasks.tests import jobs
from tasks.tests.conftest import POLL, keep_broker_open, run_worker, wait_for
from tasks.worker import Worker

pytestmark = pytest.mark.django_db(transaction=True)

# Seconds a worker's first claim waits for the other worker's (test_two_workers_...).
CLAIM_MEET = 0.3


async def test_an_async_and_a_sync_task_succeed_with_their_return_values():
    added = await jobs.add.aenqueue(2, 3)
    multiplied = await jobs.multiply.aenqueue(4, 5)
    await run_worker(max_tasks=2)
    for result, value in ((added, 5), (multiplied, 20)):
        db_result = await DBTaskResult.objects.aget(id=result.id)
        assert (db_result.status, db_result.return_value) == ("SUCCESSFUL", value)
        assert len(db_result.worker_ids) == 1
        assert db_result.finished_at >= db_result.started_at
    assert jobs.runs == {added.id: 1, multiplied.id: 1}


async def test_a_task_that_raises_fails_with_its_exception_and_traceback(caplog):
    result = await jobs.fail.aenqueue("broken")
    with caplog.at_level(logging.CRITICAL, logger="django.tasks"):
        await run_worker(max_tasks=1)
    db_result = await DBTaskResult.objects.aget(id=result.id)
    assert (db_result.status, db_result.exception_class_path) == ("FAILED", "builtins.ValueError")
    assert "raise ValueError(message)" in db_result.traceback
    assert db_result.traceback.rstrip().endswith("ValueError: broken")
    assert db_result.return_value is None


async def test_a_return_value_that_is_not_json_fails_the_task_not_the_worker():
    bad = await jobs.not_json.aenqueue()
    good = await jobs.add.aenqueue(1, 1)
    await run_worker(max_tasks=2)
    db_result = await DBTaskResult.objects.aget(id=bad.id)
    assert db_result.status == "FAILED"
    assert db_result.exception_class_path == "builtins.TypeError"
    assert (await DBTaskResult.objects.aget(id=good.id)).status == "SUCCESSFUL"


@pytest.mark.parametrize(
    "task_path",
    ["tasks.tests.jobs.removed_since", "tasks.gone.module.task", "tasks.tests.jobs.reset"],
)
async def test_a_task_whose_code_is_gone_fails_and_the_worker_goes_on(task_path, caplog):
    lost = await jobs.add.aenqueue(1, 1)
    await DBTaskResult.objects.filter(id=lost.id).aupdate(task_path=task_path)
    good = await jobs.add.aenqueue(2, 2)
    with caplog.at_level(logging.CRITICAL, logger="tasks.worker"):
        await run_worker(max_tasks=2)
    db_result = await DBTaskResult.objects.aget(id=lost.id)
    assert db_result.status == "FAILED"
    assert db_result.exception_class_path in (
        "builtins.ImportError",
        "builtins.ModuleNotFoundError",
        "django.core.exceptions.SuspiciousOperation",
    )
    assert (await DBTaskResult.objects.aget(id=good.id)).return_value == 4


async def test_async_tasks_run_at_once_on_one_loop():
    """Each task waits for a gate that opens only once all have started."""
    count = 8
    results = [await jobs.gated.aenqueue("together") for _ in range(count)]
    worker = asyncio.create_task(run_worker(max_tasks=count, concurrency=count))
    await wait_for(jobs.when_started(count))
    assert jobs.finished == []
    jobs.gate("together").set()
    await worker
    assert jobs.most_at_once == count
    statuses = DBTaskResult.objects.filter(id__in=[r.id for r in results]).values_list(
        "status", flat=True
    )
    assert [status async for status in statuses] == ["SUCCESSFUL"] * count


async def test_concurrency_bounds_the_tasks_claimed_at_once():
    results = [await jobs.gated.aenqueue("bounded") for _ in range(5)]
    worker = asyncio.create_task(run_worker(max_tasks=5, concurrency=3))
    await wait_for(jobs.when_started(3))
    # The worker is full: it claimed three and left the others in the queue.
    running = DBTaskResult.objects.running().acount()
    ready = DBTaskResult.objects.ready().acount()
    assert (await running, await ready) == (3, 2)
    jobs.gate("bounded").set()
    await worker
    assert jobs.most_at_once == 3
    assert sorted(jobs.finished) == sorted(r.id for r in results)


async def run_on_own_connection(worker: Worker) -> None:
    """Run the worker with its database work on a thread (and connection) of its own."""
    async with ThreadSensitiveContext():
        try:
            await worker.run()
        finally:
            await sync_to_async(connections.close_all)()


async def test_two_workers_never_run_one_task_twice(monkeypatch, settings):
    """Each worker claims on its own connection; each first claim waits for the other's.

    Without locking both read the same ready rows before either claims them,
    and run them twice. With it, PostgreSQL hands the second worker other rows
    (skip locked), and on SQLite the second waits for the first's transaction:
    the wait for the other (CLAIM_MEET seconds at most) ends unmet.
    """
    first_claims = set()
    meet = threading.Barrier(2, timeout=CLAIM_MEET)
    claim = DBTaskResult.claim

    def claim_after_the_other_read(db_result, worker_id):
        if worker_id not in first_claims:
            first_claims.add(worker_id)
            with contextlib.suppress(threading.BrokenBarrierError):
                meet.wait()
        claim(db_result, worker_id)

    monkeypatch.setattr(DBTaskResult, "claim", claim_after_the_other_read)
    keep_broker_open(settings)
    count = 40
    ids = {(await jobs.add.aenqueue(n, n)).id for n in range(count)}
    workers = [Worker(concurrency=4, interval=POLL), Worker(concurrency=4, interval=POLL)]
    running = [asyncio.create_task(run_on_own_connection(worker)) for worker in workers]

    async with asyncio.timeout(10):
        await jobs.when_started(count).wait()
        # Every task has begun once; a task claimed twice would be running a second time.
        for worker in workers:
            worker.stop()
        await asyncio.gather(*running)
    assert set(jobs.runs.values()) == {1}
    assert set(jobs.runs) == ids
    assert sum(worker.claimed for worker in workers) == count
    attempts = DBTaskResult.objects.successful().values_list("worker_ids", flat=True)
    assert {len(worker_ids) async for worker_ids in attempts} == {1}


async def test_max_tasks_stops_the_worker_and_it_forgets_its_heartbeat():
    results = [await jobs.add.aenqueue(n, 1) for n in range(3)]
    worker = await run_worker(max_tasks=2, concurrency=1)
    assert worker.claimed == 2
    statuses = [(await DBTaskResult.objects.aget(id=r.id)).status for r in results]
    assert statuses == ["SUCCESSFUL", "SUCCESSFUL", "READY"]
    assert not await WorkerHeartbeat.objects.aexists()


async def test_a_running_worker_records_its_heartbeat():
    loop = asyncio.get_running_loop()
    beat = asyncio.Event()

    def saved(sender, **kwargs):
        loop.call_soon_threadsafe(beat.set)

    worker = Worker(interval=POLL)
    post_save.connect(saved, sender=WorkerHeartbeat)
    try:
        running = asyncio.create_task(run_worker(worker))
        await wait_for(beat)
    finally:
        post_save.disconnect(saved, sender=WorkerHeartbeat)
    heartbeat = await WorkerHeartbeat.objects.aget()
    assert (heartbeat.worker_id, heartbeat.pid) == (worker.worker_id, os.getpid())
    worker.stop()
    await running
    assert not await WorkerHeartbeat.objects.aexists()
