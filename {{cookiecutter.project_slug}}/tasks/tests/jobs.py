"""Tasks the tests enqueue: each records what it did here, for the test to check.

The worker imports a task by its path, so these live at module level in a
module of their own. `gate(key)` returns an asyncio.Event of the running test's
loop that a gated task waits on; `reset()` starts every test afresh.
"""

import asyncio
from collections import Counter

from django.tasks import TaskContext, task

from tasks.progress import report
from tasks.retries import retry

# Task ids in the order their runs began / ended; how many times each id ran.
started: list[str] = []
finished: list[str] = []
runs: Counter[str] = Counter()
cancelled: list[str] = []
# The most gated tasks that were running at once.
most_at_once = 0
_gates: dict[str, asyncio.Event] = {}
_all_started: dict[int, asyncio.Event] = {}


def reset() -> None:
    global most_at_once
    for kept in (started, finished, cancelled, _gates, _all_started):
        kept.clear()
    runs.clear()
    most_at_once = 0


def gate(key: str) -> asyncio.Event:
    """The event that the tasks enqueued with `key` wait for; set() lets them finish."""
    return _gates.setdefault(key, asyncio.Event())


def when_started(count: int) -> asyncio.Event:
    """An event set once `count` tasks have begun a run."""
    event = _all_started.setdefault(count, asyncio.Event())
    if len(started) >= count:
        event.set()
    return event


def _begin(result_id: str) -> None:
    started.append(result_id)
    runs[result_id] += 1
    for count, event in _all_started.items():
        if len(started) >= count:
            event.set()


@task(takes_context=True)
async def add(context: TaskContext, a: int, b: int) -> int:
    """An async task: a + b."""
    _begin(context.task_result.id)
    await asyncio.sleep(0)
    finished.append(context.task_result.id)
    return a + b


@task(takes_context=True)
def multiply(context: TaskContext, a: int, b: int) -> int:
    """A sync task: a * b (the worker runs it on a thread)."""
    runs[context.task_result.id] += 1
    return a * b


@task(takes_context=True)
async def gated(context: TaskContext, key: str) -> str:
    """Waits for gate(key), counting how many gated tasks run at once; returns `key`."""
    global most_at_once
    result_id = context.task_result.id
    _begin(result_id)
    running = len(started) - len(finished) - len(cancelled)
    most_at_once = max(most_at_once, running)
    try:
        await gate(key).wait()
    except asyncio.CancelledError:
        cancelled.append(result_id)
        raise
    finished.append(result_id)
    return key


@task()
async def fail(message: str) -> None:
    raise ValueError(message)


@task()
async def not_json() -> object:
    """Returns what JSON cannot hold: the task must fail, not the worker."""
    return {1, 2}


@task(takes_context=True)
@retry(on=ConnectionError, attempts=3, backoff=60.0)
async def flaky(context: TaskContext) -> None:
    """Fails with a transient error on every attempt."""
    _begin(context.task_result.id)
    raise ConnectionError(f"attempt {context.attempt} failed")


@task(takes_context=True)
async def reporting(context: TaskContext, key: str) -> str:
    """Reports 1 of 2 steps, waits for gate(key), reports 2 of 2."""
    _begin(context.task_result.id)
    await report(context, 1, 2, "first half")
    await gate(key).wait()
    await report(context, 2, 2, "second half")
    return key
