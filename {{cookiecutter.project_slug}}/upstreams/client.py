"""One pooled httpx.AsyncClient per worker process.

Made on first use and reused by every request, so connections to an upstream
are kept alive and shared. Timeouts, pool limits and the response size cap
come from settings: nothing waits forever, a slow upstream cannot open
unbounded connections, and a large one cannot fill the process's memory.
`config/asgi.py` closes it when the server shuts down (upstreams/lifespan.py).
"""

import asyncio

import httpx
from django.conf import settings

from upstreams.bodies import ACCEPT_ENCODING, read_capped

_client: httpx.AsyncClient | None = None
_client_loop: asyncio.AbstractEventLoop | None = None


class CappedAsyncClient(httpx.AsyncClient):
    """An AsyncClient whose every read body is capped (upstreams/bodies.py).

    `get()`, `post()`, `request()` and `send()` read the body with
    `read_capped()` and raise ResponseTooLarge past HTTPX_MAX_RESPONSE_BYTES;
    `stream()` hands the unread body over, for the caller to bound.
    """

    async def send(
        self, request: httpx.Request, *, stream: bool = False, **kwargs
    ) -> httpx.Response:
        response = await super().send(request, stream=True, **kwargs)
        if stream:
            return response
        try:
            return await read_capped(response)
        finally:
            await response.aclose()


def make_client(transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """A client configured from settings; tests pass an httpx.MockTransport."""
    return CappedAsyncClient(
        # Only the codings read_capped() can decompress in bounded steps.
        headers={"Accept-Encoding": ACCEPT_ENCODING},
        timeout=httpx.Timeout(
            connect=settings.HTTPX_CONNECT_TIMEOUT,
            read=settings.HTTPX_READ_TIMEOUT,
            write=settings.HTTPX_WRITE_TIMEOUT,
            pool=settings.HTTPX_POOL_TIMEOUT,
        ),
        limits=httpx.Limits(
            max_connections=settings.HTTPX_MAX_CONNECTIONS,
            max_keepalive_connections=settings.HTTPX_MAX_KEEPALIVE_CONNECTIONS,
        ),
        transport=transport,
    )


def get_client() -> httpx.AsyncClient:
    """The process's shared client; a client belongs to the event loop it first ran on."""
    global _client, _client_loop
    loop = asyncio.get_running_loop()
    if _client is None or _client.is_closed or _client_loop is not loop:
        _client, _client_loop = make_client(), loop
    return _client


def use_client(client: httpx.AsyncClient) -> None:
    """Make `client` the shared one (tests install a MockTransport client this way)."""
    global _client, _client_loop
    _client, _client_loop = client, asyncio.get_running_loop()


async def aclose_client() -> None:
    global _client
    client, _client = _client, None
    if client is not None:
        await client.aclose()
