"""Requests that retry what is safe to retry, within a deadline.

Only idempotent methods are retried, and only when the upstream could not be
reached, timed out, dropped the connection, or answered 502/503/504. stamina does the backoff
(exponential, jittered, bounded attempts) and stops before the deadline; the
deadline itself is a hard `asyncio.timeout`, so no request outlives it.
"""

import asyncio

import httpx
import stamina
from django.conf import settings

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({502, 503, 504})


class RetryableStatus(Exception):
    def __init__(self, response: httpx.Response):
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def _worth_retrying(exc: Exception) -> bool:
    # TransportError: connect and read errors, timeouts, a connection cut mid-answer.
    return isinstance(exc, httpx.TransportError | RetryableStatus)


async def request(
    client: httpx.AsyncClient, method: str, url: str, *, deadline: float, **kwargs
) -> httpx.Response:
    """Send a request, retrying when that is safe, for at most `deadline` seconds.

    Returns the last response (a 503 that stayed a 503 included); raises
    TimeoutError past the deadline and httpx's errors when every attempt failed.
    """
    attempts = settings.HTTPX_RETRY_ATTEMPTS if method.upper() in IDEMPOTENT_METHODS else 1
    async with asyncio.timeout(deadline):
        try:
            async for attempt in stamina.retry_context(
                on=_worth_retrying,
                attempts=attempts,
                timeout=deadline,
                wait_initial=settings.HTTPX_RETRY_WAIT_INITIAL,
                # stamina's default jitter (up to 1 s) would outlast short deadlines.
                wait_jitter=settings.HTTPX_RETRY_WAIT_INITIAL,
                wait_max=1.0,
            ):
                with attempt:
                    response = await client.request(method, url, **kwargs)
                    if response.status_code in RETRY_STATUSES and attempts > 1:
                        raise RetryableStatus(response)
                    return response
        except RetryableStatus as exhausted:
            return exhausted.response
