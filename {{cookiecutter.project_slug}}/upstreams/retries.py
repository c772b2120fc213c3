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

from upstreams.bodies import ACCEPT_ENCODING, read_capped

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
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    deadline: float,
    max_bytes: int | None = None,
    **kwargs,
) -> httpx.Response:
    """Send a request, retrying when that is safe, for at most `deadline` seconds.

    The body is streamed and read with a cap, whatever the client
    (upstreams/bodies.py): at most `max_bytes` decompressed bytes,
    HTTPX_MAX_RESPONSE_BYTES unless given. Returns the last response, fully
    read (a 503 that stayed a 503 included); raises TimeoutError past the
    deadline, ResponseTooLarge (an httpx.RequestError, not retried) for a body
    over the cap, and httpx's errors when every attempt failed.
    """
    attempts = settings.HTTPX_RETRY_ATTEMPTS if method.upper() in IDEMPOTENT_METHODS else 1
    headers = httpx.Headers(kwargs.pop("headers", None))
    headers.setdefault("Accept-Encoding", ACCEPT_ENCODING)
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
                    async with client.stream(method, url, headers=headers, **kwargs) as streamed:
                        response = await read_capped(streamed, max_bytes)
                    if response.status_code in RETRY_STATUSES and attempts > 1:
                        raise RetryableStatus(response)
                    return response
        except RetryableStatus as exhausted:
            return exhausted.response
