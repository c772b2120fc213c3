"""Bounded retries with backoff for a task's transient errors.

Django's Tasks framework records attempts (`TaskResult.attempts`, one per
worker id) but never retries. Here a task raises RetryTask to ask for another
attempt later; the worker (tasks.worker) puts the same result back in the
queue with `run_after` set, so its id, and the Location a client polls, stay
the same. The `retry` decorator raises it for the errors you name:

    @task(takes_context=True)
    @retry(on=(OperationalError, httpx.TransportError), attempts=3, backoff=2.0)
    async def my_task(context, ...): ...

Attempt n (from 1) that fails with one of `on` waits backoff * 2**(n - 1)
seconds, plus up to 10 % of jitter, before attempt n + 1; the last attempt's
error fails the task. Retry only what a later attempt can cure (a dependency
briefly down), and make the task safe to run twice: a retried task may have
done part of its work.
"""

import random
from collections.abc import Callable
from functools import wraps
from inspect import iscoroutinefunction


class RetryTask(Exception):
    """Run this task again in `delay` seconds (raised `from` the error that caused it)."""

    def __init__(self, delay: float):
        super().__init__(f"retry in {delay:.1f} s")
        self.delay = delay


def backoff_delay(attempt: int, backoff: float) -> float:
    """Seconds to wait after failed attempt `attempt` (from 1): exponential, with 0-10 % jitter."""
    delay = backoff * 2 ** (attempt - 1)
    return delay * (1 + random.random() / 10)  # noqa: S311 (jitter, not a secret)


def retry(*, on: type[Exception] | tuple[type[Exception], ...], attempts: int, backoff: float):
    """Decorate a task function that takes a TaskContext first (`@task(takes_context=True)`).

    `on`: the transient errors; `attempts`: the most attempts in all (>= 1);
    `backoff`: seconds before the second attempt, doubling after each.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")

    def decorate(func: Callable) -> Callable:
        if not iscoroutinefunction(func):
            raise TypeError("retry() decorates async task functions")

        @wraps(func)
        async def wrapper(context, *args, **kwargs):
            try:
                return await func(context, *args, **kwargs)
            except on as error:
                if context.attempt >= attempts:
                    raise
                raise RetryTask(backoff_delay(context.attempt, backoff)) from error

        return wrapper

    return decorate
