"""A running task's progress: kept in the database, and sent as events when the project has them.

`report()` is what a task calls. The row it writes (tasks.models.TaskProgress)
answers GET /tasks/<id>/ from any process. With Server-Sent Events
(settings.TASKS_PROGRESS_EVENTS) the progress also reaches GET /events/:

- "worker": the worker publishes `task.progress` itself; the broker (Redis)
  carries it to every web process.
- "relay": the memory broker lives inside one web process, which the worker
  cannot reach; `relay()`, started by the web process that enqueued the task,
  reads the row as it changes and publishes it there.

Both send the same events: `task.progress` {"id", "task", "done", "total",
"message"} while it runs, then `task.finished` {"id", "task", "status"}.
"""

import asyncio
import contextvars
import logging
import time

from django.conf import settings
from django.tasks import TaskContext, TaskResultStatus
from django_tasks_db.models import DBTaskResult

from tasks.models import TaskProgress

logger = logging.getLogger(__name__)

# A relay polls this often, and gives up on a task that has not finished after RELAY_LIMIT.
RELAY_INTERVAL = 0.25
RELAY_LIMIT = 3600.0


def progress_event(result_id: str, task_name: str, progress: dict) -> dict:
    return {"id": result_id, "task": task_name, **progress}


def events_mode() -> str | None:
    return getattr(settings, "TASKS_PROGRESS_EVENTS", None)


async def publish(event: str, data: dict) -> None:
    """Publish an event to /events/; a broker that is down costs the event, never the task."""
    from events.broker import BrokerUnavailable, apublish

    try:
        await apublish(event, data)
    except BrokerUnavailable:
        logger.warning("Event %s not published: the broker is unavailable", event)


async def report(context: TaskContext, done: int, total: int, message: str = "") -> None:
    """Record that the running task has done `done` of `total` steps; `message` says which.

    `message` is cut to 200 characters.
    """
    result = context.task_result
    progress = {"done": done, "total": total, "message": message[:200]}
    await TaskProgress.objects.aupdate_or_create(result_id=result.id, defaults=progress)
    if events_mode() == "worker":
        await publish("task.progress", progress_event(result.id, result.task.name, progress))


async def finished(result_id: str, task_name: str, status: str, mode: str = "worker") -> None:
    """Tell /events/ that a task finished: the worker does in "worker" mode, a relay in "relay"."""
    if events_mode() == mode:
        await publish("task.finished", {"id": result_id, "task": task_name, "status": status})


# The relays running in this process: the loop keeps only weak references to tasks.
_relays: set[asyncio.Task] = set()


def start_relay(result_id: str, task_name: str) -> None:
    """In "relay" mode, relay the task's progress to this process's broker until it finishes."""
    if events_mode() != "relay":
        return
    # In a context of its own: the request's (its ThreadSensitiveContext
    # above all) ends with the response, long before the task does.
    relay_task = asyncio.create_task(relay(result_id, task_name), context=contextvars.Context())
    _relays.add(relay_task)
    relay_task.add_done_callback(_relays.discard)


async def relay(result_id: str, task_name: str, interval: float = RELAY_INTERVAL) -> None:
    """Publish the task's progress each time its row changes, then `task.finished`.

    One indexed read per `interval` seconds while the task is unfinished; ends
    after RELAY_LIMIT seconds whatever happens.
    """
    deadline = time.monotonic() + RELAY_LIMIT
    last = None
    finished_statuses = {TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED}
    try:
        while time.monotonic() < deadline:
            row = (
                await DBTaskResult.objects.filter(id=result_id)
                .values("status", "progress__done", "progress__total", "progress__message")
                .afirst()
            )
            if row is None:  # deleted
                return
            progress = {key: row[f"progress__{key}"] for key in ("done", "total", "message")}
            if progress["done"] is not None and progress != last:
                last = progress
                await publish("task.progress", progress_event(result_id, task_name, progress))
            if row["status"] in finished_statuses:
                await finished(result_id, task_name, row["status"], mode="relay")
                return
            await asyncio.sleep(interval)
    except Exception:
        # The database may be down for a while: the task goes on; only its events stop.
        logger.warning("Relaying the progress of task %s stopped", result_id, exc_info=True)
