"""GET /api/dashboard/: every configured source at once, within one deadline.

Each source is fetched concurrently (at most DASHBOARD_CONCURRENCY at a time)
and bounded by the same deadline, DASHBOARD_TIMEOUT seconds from the start:
a slow or broken source becomes {"ok": false, "error": ...} in the answer
instead of an error or a wait for the whole response.

A source's URL may be a path (`self=/healthz`): it is called on this server,
at the address the request came in on (`on_this_server()`), so the default
source follows whatever port the service is served on.
"""

import asyncio
import math
import re
import time
from dataclasses import dataclass

import httpx
from django.conf import settings

from upstreams.bodies import ResponseTooLarge
from upstreams.retries import request

SOURCE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class Source:
    name: str
    url: str  # an http(s) URL, or a path on this server: "/healthz"

    @property
    def is_path(self) -> bool:
        return self.url.startswith("/")


def parse_sources(value: str) -> list[Source]:
    """`name=url,name=url` as sources, a url being http(s) or a path; ValueError saying why not."""
    entries = [entry.strip() for entry in value.split(",") if entry.strip()]
    if not entries:
        raise ValueError("DASHBOARD_SOURCES is empty; set it to name=url,name=url")
    sources = []
    for entry in entries:
        name, separator, url = (part.strip() for part in entry.partition("="))
        if not separator or not SOURCE_NAME.fullmatch(name):
            raise ValueError(f"{entry!r} is not name=url (name: letters, digits, - and _)")
        if any(source.name == name for source in sources):
            raise ValueError(f"{name} appears twice")
        # "//host/x" would be a URL without its scheme, not a path.
        if url.startswith("/") and not url.startswith("//"):
            sources.append(Source(name, url))
            continue
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise ValueError(f"{name}: {url!r} is not a URL ({exc})") from None
        if parsed.scheme not in {"http", "https"} or not parsed.host:
            raise ValueError(f"{name}: {url!r} is not an http(s) URL or a path (/healthz)")
        sources.append(Source(name, url))
    return sources


def on_this_server(sources: list[Source], server: tuple | None) -> list[Source]:
    """`sources` with each path made an http URL on `server`, the request's (host, port).

    `server` is the ASGI scope's: the address of the socket that accepted the
    request, which no client can choose (the Host header is the client's to
    write). Always http: behind a proxy the scope's scheme is the proxy's, and
    a service serving TLS itself has a certificate for a name, not an address.
    A path stays a path when the port is unknown (a unix socket, or no
    `server` in the scope); fetch() reports it as that source's error.
    """
    host, port = server or (None, None)
    if not host or port is None:
        return sources
    origin = httpx.URL(scheme="http", host=host, port=int(port))
    return [Source(s.name, str(origin.join(s.url))) if s.is_path else s for s in sources]


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e999: JsonResponse would write Infinity, which is not JSON
        raise ValueError(f"{text} is out of range")
    return number


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _body(response: httpx.Response):
    """The parsed JSON when the Content-Type says JSON, else the text.

    Raises ValueError for a body that is not JSON after all, holds NaN or
    Infinity (which the dashboard's own answer could not carry), or is nested
    too deep to parse (RecursionError).
    """
    if not response.headers.get("content-type", "").split(";")[0].strip().endswith("json"):
        return response.text
    try:
        return response.json(parse_constant=_refuse_constant, parse_float=_finite)
    except RecursionError:
        raise ValueError("nested too deep") from None


async def fetch(client, source: Source, deadline: float, slots: asyncio.Semaphore) -> dict:
    """One source's entry; never raises. `deadline` is a loop.time() instant."""
    started = time.perf_counter()
    error = None
    if source.is_path:  # on_this_server() found no port to call it on
        return {"ok": False, "error": "no server port for a path: use a URL", "elapsed_ms": 0.0}
    try:
        async with asyncio.timeout_at(deadline), slots:
            remaining = deadline - asyncio.get_running_loop().time()
            response = await request(client, "GET", source.url, deadline=remaining)
        if not response.is_success:  # redirects are not followed: a 3xx is a failure too
            error = f"http {response.status_code}"
        else:
            data = _body(response)
    except (TimeoutError, httpx.TimeoutException):
        error = "timeout"
    except httpx.ConnectError:
        error = "connect error"
    except ResponseTooLarge:
        error = "response too large"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}"
    except ValueError:
        error = "invalid json"
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    if error:
        return {"ok": False, "error": error, "elapsed_ms": elapsed_ms}
    return {"ok": True, "status": response.status_code, "data": data, "elapsed_ms": elapsed_ms}


async def collect(client, sources: list[Source]) -> dict[str, dict]:
    deadline = asyncio.get_running_loop().time() + settings.DASHBOARD_TIMEOUT
    slots = asyncio.Semaphore(settings.DASHBOARD_CONCURRENCY)
    results = await asyncio.gather(*(fetch(client, s, deadline, slots) for s in sources))
    return {source.name: result for source, result in zip(sources, results, strict=True)}


class SharedRound:
    """The last round of upstream calls, shared by the requests that want the same one.

    A request that comes while a round runs waits for that round (single
    flight), and one that comes within DASHBOARD_CACHE_SECONDS after it ended
    gets its result: however many requests come, each process makes at most
    one round at a time, and at most one per round time plus
    DASHBOARD_CACHE_SECONDS. A round is a task of its own: a waiting request
    that is cancelled (its client went away) stops waiting, and the round goes
    on for the others. A round that raised is not reused.
    """

    def __init__(self):
        self._key = None
        # Its result is (what make_round() returned, loop.time() when it ended).
        self._task: asyncio.Task | None = None

    def _reusable(self, key, loop: asyncio.AbstractEventLoop) -> bool:
        task = self._task
        # A task belongs to its event loop (each test has its own).
        if task is None or self._key != key or task.get_loop() is not loop:
            return False
        if not task.done():
            return True
        if task.cancelled() or task.exception() is not None:
            return False
        _, ended_at = task.result()
        return loop.time() - ended_at < settings.DASHBOARD_CACHE_SECONDS

    @staticmethod
    async def _timed(make_round):
        result = await make_round()
        return result, asyncio.get_running_loop().time()

    async def result(self, key, make_round) -> dict:
        """`make_round()`'s result for `key`, from a running or recent round when there is one."""
        loop = asyncio.get_running_loop()
        if not self._reusable(key, loop):
            self._key, self._task = key, loop.create_task(self._timed(make_round))
        result, _ = await asyncio.shield(self._task)
        return result

    def forget(self) -> None:
        """Drop the last round, so the next request makes a new one (tests call it)."""
        self._key, self._task = None, None


dashboard_round = SharedRound()
