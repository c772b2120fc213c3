"""A baked project deployed the way its README says, and clients that drive it over the network.

Everything binds to 127.0.0.1, and every server, stream and socket started
here is stopped when its context manager exits, even after a failure.
"""

import asyncio
import contextlib
import json
import os
import re
import shlex
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import psutil
import pytest
from bakery import bake, run
from httpx_sse import aconnect_sse
from servers import (
    IN_CI,
    Postgres,
    Redis,
    ServerUnavailable,
    Uvicorn,
    postgres_server,
    redis_server,
    served_env,
    uvicorn_server,
)
from websockets.asyncio.client import connect

SERVE_COMMAND = re.compile(r"<!-- serve-command -->\s*```sh\n(.*?)```", re.DOTALL)
# The upstreams the dashboard calls: one fast, one slower than the deadline, one broken.
DASHBOARD_DEADLINE = 1.0


# `"${NAME:-default}"`: the value of NAME in the environment, else the default.
SHELL_DEFAULT = re.compile(r"\$\{(\w+):-([^}]*)\}")


def serve_commands(project: Path, environ: dict[str, str] | None = None) -> list[list[str]]:
    """The production commands of the baked README, one argument list per command.

    Lines ending in a backslash continue; `${NAME:-default}` expands as a shell
    would, from `environ` (the server's environment).
    """
    found = SERVE_COMMAND.search((project / "README.md").read_text())
    assert found, "the baked README has no <!-- serve-command --> block"
    environ = os.environ if environ is None else environ
    text = SHELL_DEFAULT.sub(lambda m: environ.get(m[1]) or m[2], found[1])
    return [shlex.split(line) for line in text.replace("\\\n", " ").splitlines() if line.strip()]


def uvicorn_arguments(command: list[str]) -> list[str]:
    """The README's uvicorn options, minus the address: tests serve on a free loopback port."""
    assert command[:4] == ["uv", "run", "uvicorn", "config.asgi:application"], command
    options, rest = [], iter(command[4:])
    for option in rest:
        if option in ("--host", "--port"):
            next(rest)
        else:
            options.append(option)
    return options


class Upstream(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/slow":
            time.sleep(DASHBOARD_DEADLINE * 3)
        status = 500 if self.path == "/broken" else 200
        # The dashboard hangs up on the slow one at its deadline.
        answer_json(self, status, json.dumps({"path": self.path}).encode())

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def upstream_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def server_or_skip(stack: contextlib.ExitStack, start):
    try:
        return stack.enter_context(start())
    except ServerUnavailable as missing:
        if IN_CI:
            pytest.fail(f"{missing} (required when CI=true)")
        pytest.skip(str(missing))


@dataclass
class Deployment:
    project: Path
    server: Uvicorn
    token: str
    media: Path
    redis: Redis | None
    postgres: Postgres | None
    # The environment the server runs in: the same for other processes of the project.
    env: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def workers(self) -> list[psutil.Process]:
        """The processes that accept connections: the server itself, or its --workers."""
        supervisor = psutil.Process(self.server.process.pid)
        # With --workers the supervisor holds the socket too, but never accepts on it.
        listening = [
            process
            for process in supervisor.children()
            if any(
                c.status == psutil.CONN_LISTEN and c.laddr.port == self.server.port
                for c in _connections(process)
            )
        ]
        return listening or [supervisor]

    def client_ports(self, pid: int) -> set[int]:
        """The local ports of the client connections worker `pid` holds open."""
        return {
            c.raddr.port
            for c in _connections(psutil.Process(pid))
            # Not the worker's own connections to PostgreSQL or Redis.
            if c.raddr and c.laddr.port == self.server.port and c.status == psutil.CONN_ESTABLISHED
        }

    def worker_of(self, local_port: int) -> int | None:
        """The pid of the worker holding our client connection from `local_port`."""
        for worker in self.workers():
            if local_port in self.client_ports(worker.pid):
                return worker.pid
        return None


def _connections(process: psutil.Process):
    with contextlib.suppress(psutil.Error):
        return process.net_connections(kind="tcp")
    return []


@contextlib.contextmanager
def deploy(tmp_path: Path, environments, **answers) -> Iterator[Deployment]:
    """Bake with `answers`, then migrate, collectstatic and serve as the README says."""
    project = bake(tmp_path / "bake", **answers)
    python = environments.python_for(project)
    media = tmp_path / "media"
    media.mkdir()
    with contextlib.ExitStack() as stack:
        redis = postgres = None
        # The API's docs are off by default without DEBUG; the fuzz suite reads the contract.
        variables = {"DJANGO_MEDIA_ROOT": str(media), "API_DOCS": "true"}
        if answers.get("broker") == "redis":
            redis = server_or_skip(stack, redis_server)
            variables["REDIS_URL"] = redis.url
        if answers.get("database") == "postgresql":
            postgres = server_or_skip(stack, postgres_server)
            variables["DATABASE_URL"] = postgres.url("postgres")
        upstream = stack.enter_context(upstream_server())
        variables["DASHBOARD_SOURCES"] = ",".join(
            f"{name}={upstream}/{name}" for name in ("fast", "slow", "broken")
        )
        variables["DASHBOARD_TIMEOUT"] = str(DASHBOARD_DEADLINE)
        env = served_env(tmp_path / "live.sqlite3", **variables)
        *setup, serve = serve_commands(project, env)
        for command in setup:
            assert command[:3] == ["uv", "run", "python"], command
            run([python, *command[3:]], cwd=project, env=env)
        created = run([python, "manage.py", "create_api_token", "live"], cwd=project, env=env)
        server = stack.enter_context(
            uvicorn_server(python, project, env, *uvicorn_arguments(serve))
        )
        token = created.stdout.split()[-1]
        yield Deployment(project, server, token, media, redis, postgres, env)


@dataclass
class EventSource:
    """An SSE client that behaves like a browser's EventSource.

    It reconnects whenever the stream ends or fails, sending the last id it
    saw as Last-Event-ID, and keeps every event it received, in order.
    """

    url: str
    retry: float = 0.2
    events: list = field(default_factory=list)
    connects: int = 0
    clean_ends: list[float] = field(default_factory=list)  # when each stream ended cleanly
    failures: list[str] = field(default_factory=list)
    last_id: str | None = None
    local_port: int | None = None
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task | None = None

    async def __aenter__(self):
        self._task = asyncio.create_task(self._run())
        async with asyncio.timeout(30):
            await self.opened.wait()
        return self

    async def __aexit__(self, *exc_info):
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=1)
        async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=60), limits=limits) as client:
            while True:
                headers = {"Last-Event-ID": self.last_id} if self.last_id else {}
                try:
                    async with aconnect_sse(client, "GET", self.url, headers=headers) as source:
                        source.response.raise_for_status()
                        stream = source.response.extensions["network_stream"]
                        self.local_port = stream.get_extra_info("client_addr")[1]
                        self.connects += 1
                        async for sse in source.aiter_sse():
                            if sse.id:
                                self.last_id = sse.id
                            if sse.retry is not None:
                                self.opened.set()
                            if sse.data:
                                self.events.append(sse)
                    self.clean_ends.append(time.monotonic())
                except (httpx.HTTPError, OSError) as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(self.retry)

    async def wait_for(self, count: int, seconds: float = 30) -> list:
        """Wait until `count` events arrived in all; return them."""
        async with asyncio.timeout(seconds):
            while len(self.events) < count:
                await asyncio.sleep(0.02)
        return self.events[:count]


def join(deployment: Deployment, room: str, origin: str | None = None):
    return connect(
        f"ws://127.0.0.1:{deployment.server.port}/ws/rooms/{room}/",
        origin=origin or deployment.url,
        open_timeout=10,
    )


async def receive_json(websocket, seconds: float = 10) -> dict:
    return json.loads(await asyncio.wait_for(websocket.recv(), seconds))


def raw_get(port: int, path: str) -> int:
    """GET `path` exactly as written (clients normalise `..`); the status code."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        )
        status_line = sock.makefile("rb").readline().decode()
    return int(status_line.split()[1])


async def publish(client: httpx.AsyncClient, deployment: Deployment, event: str, data):
    return await client.post(
        f"{deployment.url}/events/publish/",
        json={"event": event, "data": data},
        headers=deployment.auth,
    )


async def publish_when_ready(client, deployment, event, data, seconds: float = 30) -> str:
    """Publish, retrying while the broker answers 503 (Redis on its way back)."""
    deadline = time.monotonic() + seconds
    while True:
        response = await publish(client, deployment, event, data)
        if response.status_code != 503 or time.monotonic() > deadline:
            assert response.status_code == 202, response.text
            return response.json()["id"]
        await asyncio.sleep(0.1)


async def wait_for_status(client, url: str, status: int, seconds: float = 30) -> float:
    """Poll `url` until it answers `status`; the seconds that took."""
    started = time.monotonic()
    while True:
        with contextlib.suppress(httpx.TransportError):
            if (await client.get(url)).status_code == status:
                return time.monotonic() - started
        if time.monotonic() - started > seconds:
            raise AssertionError(f"{url} did not answer {status} within {seconds}s")
        await asyncio.sleep(0.1)


WORKER_COMMAND = re.compile(r"<!-- worker-command -->\s*```sh\n(.*?)```", re.DOTALL)


def worker_command(project: Path) -> list[str]:
    """The baked README's command for the worker, minus `uv run python`."""
    found = WORKER_COMMAND.search((project / "README.md").read_text())
    assert found, "the baked README has no <!-- worker-command --> block"
    command = shlex.split(found[1])
    assert command[:3] == ["uv", "run", "python"], command
    return command[3:]


def answer_json(handler: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
    """Send `body` as a JSON response, unless the client has already hung up."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
