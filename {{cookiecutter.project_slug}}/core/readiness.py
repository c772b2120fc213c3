"""Readiness checks for GET /readyz.

A check is an async callable that returns when its dependency answers and
raises when it does not. settings.READINESS_CHECKS names the checks to run.
"""

import asyncio
import logging
import time

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)


def _select_one() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


async def database() -> None:
    # Django has no async database driver: the query runs on the request's
    # sync thread, like every async ORM call.
    await sync_to_async(_select_one)()


async def _run(name: str, check) -> dict:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(settings.READINESS_TIMEOUT):
            await check()
    except TimeoutError:
        error = "timeout"
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
    results = await asyncio.gather(*(_run(n, c) for n, c in zip(names, checks, strict=True)))
    return dict(zip(names, results, strict=True))
