"""Test helpers: drive the real ASGI handler, count thread hops while it runs, and
feed uvicorn's protocols through a fake transport.

Django's test clients bypass parts of the ASGI handler (its per-request
thread context, the request_started/finished signals), so hop counts must be
taken through `config.asgi.application` itself.
"""

import asyncio
import contextlib
import re
from dataclasses import dataclass
from html import unescape
from unittest import mock

from asgiref.sync import SyncToAsync
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.db import OperationalError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.test import override_settings
from django.utils.module_loading import import_string
from uvicorn.config import Config
from uvicorn.server import ServerState

# Django's ASGI handler hops twice per request: the request_started receivers,
# and response.close() (request_finished).
HANDLER_HOPS = 2


class FakeTransport(asyncio.Transport):
    """A transport that keeps what a server protocol writes, for driving uvicorn's
    protocols (or a subclass of the project's) without a socket."""

    def __init__(self):
        super().__init__()
        self.written = b""
        self.closed = False

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def write(self, data):
        self.written += data

    def close(self):
        self.closed = True

    abort = close

    def is_closing(self):
        return self.closed

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass


def connected(app, **protocol: str) -> tuple[asyncio.Protocol, FakeTransport]:
    """A connection as uvicorn serves it: (protocol, transport), no socket.

    `protocol` is the one command-line option that names it, as an import
    string (`http="core.protocol:HttpToolsProtocol"` or `ws=...`); uvicorn's
    Config resolves it, as `uvicorn --http`/`--ws` would.
    """
    config = Config(app=app, log_config=None, **protocol)
    config.load()
    (kind,) = protocol
    protocol_class = config.http_protocol_class if kind == "http" else config.ws_protocol_class
    server = protocol_class(config, ServerState(), app_state={})
    transport = FakeTransport()
    server.connection_made(transport)
    return server, transport


@dataclass
class AsgiResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def http_scope(method: str = "GET", path: str = "/", headers=()) -> dict:
    """The ASGI scope a server builds for one HTTP request to `path` (with its query)."""
    path, _, query = path.partition("?")
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"testserver"), *((k.encode(), v.encode()) for k, v in headers)],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


async def asgi_request(app, method="GET", path="/", headers=(), body=b"") -> AsgiResponse:
    """Send one HTTP request through an ASGI application and collect the answer."""
    scope = http_scope(method, path, headers)
    incoming = [{"type": "http.request", "body": body, "more_body": False}]
    sent = []

    async def receive():
        if incoming:
            return incoming.pop(0)
        await asyncio.Event().wait()  # no disconnect: Django cancels this when done

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    return AsgiResponse(
        status=start["status"],
        headers={k.decode().lower(): v.decode() for k, v in start["headers"]},
        body=b"".join(message.get("body", b"") for message in sent[1:]),
    )


@contextlib.contextmanager
def count_thread_hops():
    """Collect the name of every function run through asgiref's sync_to_async."""
    hops: list[str] = []
    original = SyncToAsync.__call__

    async def counting(self, *args, **kwargs):
        # Never repr() the function: a bound QuerySet method's repr runs the query.
        hops.append(getattr(self.func, "__qualname__", None) or type(self.func).__name__)
        return await original(self, *args, **kwargs)

    with mock.patch.object(SyncToAsync, "__call__", counting):
        yield hops


async def request_hops(path: str, middleware: list[str] | None = None, **request) -> list[str]:
    """The thread hops one request costs through a fresh ASGI handler.

    The handler is built here, so it loads MIDDLEWARE (and the settings it
    reads at start-up) as the test has them.
    """
    middleware = settings.MIDDLEWARE if middleware is None else middleware
    with override_settings(MIDDLEWARE=middleware):
        handler = ASGIHandler()
        with count_thread_hops() as hops:
            response = await asgi_request(handler, path=path, **request)
    if response.status >= 300:
        raise AssertionError(f"{path} answered {response.status}: {response.body[:500]!r}")
    return hops


def stock_middleware() -> list[str]:
    """MIDDLEWARE with each async-native class swapped for the Django class it subclasses."""
    from core.middleware import AsyncNativeMixin  # needs the app registry

    def original(path: str) -> str:
        cls = import_string(path)
        if not issubclass(cls, AsyncNativeMixin):
            return path
        (base,) = (base for base in cls.__bases__ if base is not AsyncNativeMixin)
        return f"{base.__module__}.{base.__qualname__}"

    return [original(path) for path in settings.MIDDLEWARE]


@contextlib.contextmanager
def database_down():
    """Every new query fails the way it does when the database server is down."""

    def refuse(self):
        raise OperationalError("connection refused: is the server running?")

    with mock.patch.object(BaseDatabaseWrapper, "ensure_connection", refuse):
        yield


async def home_panel(async_client, panel_id: str) -> str:
    """The home page's `<section id=panel_id>`, entities unescaped; fails when it is missing."""
    html = (await async_client.get("/")).content.decode()
    found = re.search(rf'<section class="panel" id="{panel_id}"(.*?)</section>', html, re.DOTALL)
    if found is None:
        raise AssertionError(f"no {panel_id} on the home page")
    return unescape(found.group(0))
