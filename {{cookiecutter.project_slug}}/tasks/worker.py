"""An async worker for django-tasks-db's queue: many tasks at once in one process.

django-tasks-db's own `db_worker` runs one task at a time, so 50 tasks that
each wait 1 s on the network take 50 s. This worker claims up to
TASKS_WORKER_CONCURRENCY tasks and runs them together on one event loop: an
async task runs on the loop, a sync one on a thread of its own. It keeps the
backend's table, statuses and claim (`DBTaskResult.claim`, which appends the
worker id: `TaskResult.attempts` counts them), and adds what a production
queue needs:

- Claims are row locks that skip locked rows (PostgreSQL `FOR UPDATE SKIP
  LOCKED`); on SQLite the claim runs in an EXCLUSIVE transaction, so one
  writer claims at a time. Either way two workers never claim one task.
- A heartbeat (tasks.models.WorkerHeartbeat) every TASKS_HEARTBEAT_SECONDS.
  A task left RUNNING by a worker unseen for TASKS_WORKER_LOST_SECONDS (killed
  with SIGKILL, out of memory, its host gone) is put back in the queue, or
  marked failed with WorkerLost once it has had TASKS_MAX_ATTEMPTS attempts.
- SIGTERM or SIGINT: no new claims; running tasks get
  TASKS_SHUTDOWN_GRACE_SECONDS to finish, then are cancelled and put back in
  the queue. A second signal cancels them at once.
- RetryTask (tasks.retries) puts the task back with `run_after` in the future.
- Finished results older than TASKS_RESULT_RETENTION_DAYS are deleted hourly.

Database work runs through sync_to_async: Django's ORM is sync, and the
worker's event loop must never wait on a query.
"""

import asyncio
import logging
import os
import signal
import socket
from datetime import timedelta
from inspect import iscoroutinefunction
from traceback import format_exception

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.db import close_old_connections, transaction
from django.tasks import TaskContext, TaskResultStatus
from django.tasks.signals import task_finished, task_started
from django.utils import timezone
from django.utils.crypto import get_random_string
from django.utils.module_loading import import_string
from django_tasks_db.models import DBTaskResult, get_date_max
from django_tasks_db.utils import exclusive_transaction

from tasks import progress
from tasks.models import WorkerHeartbeat
from tasks.retries import RetryTask

logger = logging.getLogger(__name__)

PRUNE_EVERY = timedelta(hours=1)


class WorkerLost(Exception):
    """The worker running this task stopped answering, and it had no attempts left."""


def _requeue(db_result: DBTaskResult, run_after=None, error: BaseException | None = None) -> None:
    """Put a claimed task back in the queue, keeping its id and its attempts."""
    db_result.status = TaskResultStatus.READY
    db_result.run_after = run_after or get_date_max()
    fields = ["status", "run_after"]
    # Why it is being retried (GET /tasks/<id>/ shows it), recorded as set_failed records it.
    if error is not None:
        db_result.exception_class_path = f"{type(error).__module__}.{type(error).__qualname__}"
        db_result.traceback = "".join(format_exception(error))
        fields += ["exception_class_path", "traceback"]
    db_result.save(update_fields=fields)


def recover_lost(backend_name: str, lost_after: float, max_attempts: int) -> tuple[int, int]:
    """Requeue or fail the RUNNING tasks of workers unseen for `lost_after` seconds.

    Returns (requeued, failed). A task counts as lost when it started more
    than `lost_after` seconds ago and the worker that claimed it last has no
    heartbeat within that time. Safe to run in several workers at once: the
    rows are locked, skipping those another worker holds.
    """
    now = timezone.now()
    cutoff = now - timedelta(seconds=lost_after)
    requeued = failed = 0
    with transaction.atomic():
        seen = WorkerHeartbeat.objects.filter(last_seen__gte=cutoff)
        alive = set(seen.values_list("worker_id", flat=True))
        candidates = (
            DBTaskResult.objects.running()
            .filter(backend_name=backend_name, started_at__lt=cutoff)
            .select_for_update(skip_locked=True)
        )
        for db_result in candidates:
            if db_result.worker_ids and db_result.worker_ids[-1] in alive:
                continue
            attempts = len(db_result.worker_ids)
            if attempts < max_attempts:
                _requeue(db_result)
                requeued += 1
            else:
                last_worker = db_result.worker_ids[-1] if db_result.worker_ids else "?"
                db_result.set_failed(
                    WorkerLost(
                        f"Worker {last_worker} stopped answering while running this task; "
                        f"attempt {attempts} of {max_attempts}."
                    )
                )
                failed += 1
    if requeued or failed:
        logger.warning("Lost workers' tasks: %d requeued, %d failed", requeued, failed)
    return requeued, failed


def prune(backend_name: str, retention_days: int, lost_after: float) -> int:
    """Delete results finished more than `retention_days` ago, and long-gone workers' heartbeats.

    Returns how many results were deleted.
    """
    cutoff = timezone.now() - timedelta(days=retention_days)
    _, deleted = (
        DBTaskResult.objects.finished()
        .filter(backend_name=backend_name, finished_at__lt=cutoff)
        .delete()
    )
    stale = timezone.now() - timedelta(seconds=max(lost_after * 10, 86400))
    WorkerHeartbeat.objects.filter(last_seen__lt=stale).delete()
    # The results alone: delete()'s total counts their progress and surveys too.
    return deleted.get(DBTaskResult._meta.label, 0)


class Worker:
    """Claims and runs tasks of one backend's queues until stopped.

    `concurrency`: tasks at once; `interval`: seconds between polls while
    idle. The other limits come from settings (see config/settings.py, TASKS_*).
    """

    def __init__(
        self,
        *,
        backend_name: str = "default",
        queue_names: list[str] | None = None,
        concurrency: int | None = None,
        interval: float | None = None,
        worker_id: str | None = None,
        max_tasks: int | None = None,
    ):
        self.backend_name = backend_name
        self.queue_names = queue_names
        self.concurrency = concurrency or settings.TASKS_WORKER_CONCURRENCY
        self.interval = settings.TASKS_WORKER_INTERVAL if interval is None else interval
        self.worker_id = worker_id or get_random_string(32)
        self.max_tasks = max_tasks
        self.claimed = 0
        self.running: dict[asyncio.Task, DBTaskResult] = {}
        self.stopping = asyncio.Event()
        self.signals = 0
        self.wake = asyncio.Event()
        self.started_at = timezone.now()
        self.last_prune = None

    # The database side: each runs on the ORM's thread, through sync_to_async.

    def _claim(self, limit: int) -> list[DBTaskResult]:
        tasks = DBTaskResult.objects.ready().filter(backend_name=self.backend_name)
        if self.queue_names:
            tasks = tasks.filter(queue_name__in=self.queue_names)
        with exclusive_transaction(tasks.db):
            claimed = list(tasks.select_for_update(skip_locked=True)[:limit])
            for db_result in claimed:
                db_result.claim(self.worker_id)
        return claimed

    def _heartbeat(self) -> None:
        now = timezone.now()
        WorkerHeartbeat.objects.update_or_create(
            worker_id=self.worker_id,
            defaults={
                "hostname": socket.gethostname()[:255],
                "pid": os.getpid(),
                "started_at": self.started_at,
                "last_seen": now,
                "running": len(self.running),
            },
        )
        recover_lost(
            self.backend_name, settings.TASKS_WORKER_LOST_SECONDS, settings.TASKS_MAX_ATTEMPTS
        )
        if self.last_prune is None or now - self.last_prune >= PRUNE_EVERY:
            self.last_prune = now
            if deleted := prune(
                self.backend_name,
                settings.TASKS_RESULT_RETENTION_DAYS,
                settings.TASKS_WORKER_LOST_SECONDS,
            ):
                logger.info("Deleted %d finished task results", deleted)
        close_old_connections()

    def _forget(self) -> None:
        WorkerHeartbeat.objects.filter(worker_id=self.worker_id).delete()

    # The event loop side.

    async def run(self) -> None:
        """Work until a signal (or `max_tasks` claimed and done); returns once nothing runs."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop, signum)
        logger.info(
            "Worker %s started: queue %s, %d tasks at once",
            self.worker_id,
            ",".join(self.queue_names or ["*"]),
            self.concurrency,
        )
        heartbeat = asyncio.create_task(self.beat())
        try:
            await self.claim_and_run()
            await self.finish_running()
        finally:
            heartbeat.cancel()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            try:
                await sync_to_async(self._forget)()
            finally:
                # Even when cancelled meanwhile: what tasks opened must not be left open.
                for close in getattr(settings, "TASKS_WORKER_CLOSE", ()):
                    await import_string(close)()
            logger.info("Worker %s stopped", self.worker_id)

    def stop(self, signum: int | None = None) -> None:
        """First call: stop claiming, let running tasks finish. Second: cancel them too."""
        self.signals += 1
        if self.signals == 1:
            logger.warning(
                "%s: finishing %d running tasks (up to %.0f s), claiming no more",
                signal.Signals(signum).name if signum else "Stop",
                len(self.running),
                settings.TASKS_SHUTDOWN_GRACE_SECONDS,
            )
            self.stopping.set()
            self.wake.set()
        else:
            logger.warning("Stopping now: %d running tasks go back in the queue", len(self.running))
            for running_task in self.running:
                running_task.cancel()

    async def beat(self) -> None:
        while True:
            try:
                await sync_to_async(self._heartbeat)()
            except Exception:
                # The database is down: tasks' own errors say so; try again next beat.
                logger.warning("Heartbeat failed", exc_info=True)
            await asyncio.sleep(settings.TASKS_HEARTBEAT_SECONDS)

    def done_claiming(self) -> bool:
        return self.stopping.is_set() or (
            self.max_tasks is not None and self.claimed >= self.max_tasks
        )

    async def claim_and_run(self) -> None:
        while not self.done_claiming():
            # Cleared before claiming: a task that ends meanwhile sets it again.
            self.wake.clear()
            free = self.concurrency - len(self.running)
            if self.max_tasks is not None:
                free = min(free, self.max_tasks - self.claimed)
            claimed = []
            if free > 0:
                try:
                    claimed = await sync_to_async(self._claim)(free)
                except Exception:
                    logger.warning("Claiming tasks failed; trying again", exc_info=True)
            for db_result in claimed:
                running_task = asyncio.create_task(self.execute(db_result))
                self.running[running_task] = db_result
                running_task.add_done_callback(self.finished)
            self.claimed += len(claimed)
            if len(claimed) < free or free <= 0:
                # Idle, or full: wait for a free slot, a stop, or the next poll.
                try:
                    async with asyncio.timeout(self.interval):
                        await self.wake.wait()
                except TimeoutError:
                    pass

    def finished(self, running_task: asyncio.Task) -> None:
        self.running.pop(running_task, None)
        self.wake.set()

    async def finish_running(self) -> None:
        if not self.running:
            return
        grace = settings.TASKS_SHUTDOWN_GRACE_SECONDS if self.stopping.is_set() else None
        _done, pending = await asyncio.wait(list(self.running), timeout=grace)
        for running_task in pending:
            running_task.cancel()
        if pending:
            await asyncio.wait(pending)

    async def execute(self, db_result: DBTaskResult) -> None:
        """Run one claimed task and record how it ended; never raises."""
        try:
            task = db_result.task
            task_result = db_result.task_result
        except (ImportError, SuspiciousOperation) as exc:  # its code is gone or not a task
            logger.exception("Task %s cannot be loaded", db_result.id)
            await sync_to_async(db_result.set_failed)(exc)
            return
        sender = type(task.get_backend())
        args = list(task_result.args)
        if task.takes_context:
            args.insert(0, TaskContext(task_result=task_result))
        try:
            await task_started.asend(sender=sender, task_result=task_result)
            if iscoroutinefunction(task.func):
                value = await task.func(*args, **task_result.kwargs)
            else:
                value = await sync_to_async(_call_and_close, thread_sensitive=False)(
                    task.func, *args, **task_result.kwargs
                )
        except asyncio.CancelledError:
            logger.warning("Task %s interrupted by shutdown: back in the queue", db_result.id)
            await sync_to_async(_requeue)(db_result)
            return
        except RetryTask as retry:
            run_after = timezone.now() + timedelta(seconds=retry.delay)
            logger.warning(
                "Task %s attempt %d failed (%r); retrying in %.1f s",
                db_result.id,
                task_result.attempts,
                retry.__cause__,
                retry.delay,
            )
            await sync_to_async(_requeue)(db_result, run_after, retry.__cause__ or retry)
            return
        except Exception as exc:
            # django.tasks logs the failure, traceback included, on task_finished.
            await self.record(db_result, task, sender, error=exc)
            return
        await self.record(db_result, task, sender, value=value)

    async def record(self, db_result, task, sender, *, value=None, error=None) -> None:
        try:
            if error is None:
                # Raises when the return value is not JSON: then the task fails with that error.
                await sync_to_async(db_result.set_successful)(value)
        except Exception as exc:
            error = exc
        if error is not None:
            await sync_to_async(db_result.set_failed)(error)
        await task_finished.asend(sender=sender, task_result=db_result.task_result)
        await progress.finished(str(db_result.id), task.name, db_result.status)


def _call_and_close(func, *args, **kwargs):
    """Run a sync task on a worker thread, closing the database connection it opened there."""
    try:
        return func(*args, **kwargs)
    finally:
        close_old_connections()
