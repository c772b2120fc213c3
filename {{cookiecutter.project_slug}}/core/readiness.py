"""Readiness checks for GET /readyz.

A check is an async callable that returns when its dependency answers and
raises when it does not. settings.READINESS_CHECKS names the checks to run.
A check that finds what it looks for missing, rather than failing itself,
raises CheckFailed: logged in one line, where any other error comes with its
traceback.
"""

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)


class CheckFailed(Exception):
    """The check ran and its dependency is not there; the message says what is missing."""


# Django has no async database driver, so the query runs on a thread: this
# one, not the request's. A check that times out is abandoned, not stopped (a
# thread cannot be interrupted); on the request's thread it would hold back
# the end of the request, the answer included, until the query gave up. Here
# it holds only this thread: the checks queued behind it time out in turn
# and are dropped unrun, so a hanging database costs one thread, not one per
# /readyz request.
_database_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="readiness")


def _select_one() -> None:
    """SELECT 1 on this thread's connection, closed before returning whatever happens."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        # No request_finished comes to this thread to close it, and an
        # abandoned check's connection must not outlive the check.
        connection.close()


async def database() -> None:
    await sync_to_async(_select_one, thread_sensitive=False, executor=_database_thread)()


async def run_check(name: str, check) -> dict:
    """Run `check()` within READINESS_TIMEOUT: {"ok", "ms", "error"?}; never raises."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(settings.READINESS_TIMEOUT):
            await check()
    except TimeoutError:
        error = "timeout"
    except CheckFailed as exc:
        # Expected while the dependency is away: an orchestrator polling
        # /readyz would otherwise fill the log with the same traceback.
        logger.warning("Readiness check %s failed: %s", name, exc)
        error = type(exc).__name__
    except Exception as exc:
        logger.warning("Readiness check %s failed", name, exc_info=True)
        error = type(exc).__name__
    else:
        error = None
    result = {"ok": error is None, "ms": round((time.perf_counter() - started) * 1000, 1)}
    if error:
        result["error"] = error
    return result


async def run_checks() -> dict[str, dict]:
    """Run every configured check concurrently; never raises."""
    names = list(settings.READINESS_CHECKS)
    checks = [import_string(settings.READINESS_CHECKS[name]) for name in names]
    results = await asyncio.gather(*(run_check(n, c) for n, c in zip(names, checks, strict=True)))
    return dict(zip(names, results, strict=True))
