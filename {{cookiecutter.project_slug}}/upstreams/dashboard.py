"""GET /api/dashboard/: every configured source at once, within one deadline.

Each source is fetched concurrently (at most DASHBOARD_CONCURRENCY at a time)
and bounded by the same deadline, DASHBOARD_TIMEOUT seconds from the start:
a slow or broken source becomes {"ok": false, "error": ...} in the answer
instead of an error or a wait for the whole response.
"""

import asyncio
import re
import time
from dataclasses import dataclass

import httpx
from django.conf import settings

from upstreams.retries import request

SOURCE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class Source:
    name: str
    url: str


def parse_sources(value: str) -> list[Source]:
    """`name=url,name=url` as sources; ValueError saying what is wrong."""
    entries = [entry.strip() for entry in value.split(",") if entry.strip()]
    if not entries:
        raise ValueError("DASHBOARD_SOURCES is empty; set it to name=url,name=url")
    sources = []
    for entry in entries:
        name, separator, url = (part.strip() for part in entry.partition("="))
        if not separator or not SOURCE_NAME.fullmatch(name):
            raise ValueError(f"{entry!r} is not name=url (name: letters, digits, - and _)")
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise ValueError(f"{name}: {url!r} is not a URL ({exc})") from None
        if parsed.scheme not in {"http", "https"} or not parsed.host:
            raise ValueError(f"{name}: {url!r} is not an http(s) URL")
        if any(source.name == name for source in sources):
            raise ValueError(f"{name} appears twice")
        sources.append(Source(name, url))
    return sources


def _body(response: httpx.Response):
    if response.headers.get("content-type", "").split(";")[0].strip().endswith("json"):
        return response.json()  # ValueError when it is not JSON after all
    return response.text


async def fetch(client, source: Source, deadline: float, slots: asyncio.Semaphore) -> dict:
    """One source's entry; never raises. `deadline` is a loop.time() instant."""
    started = time.perf_counter()
    error = None
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
