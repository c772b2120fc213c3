"""Websocket rooms across two uvicorn processes sharing one real Redis.

A client on process A and a client on process B join the same room: what A's
client sends reaches B's only through the Redis channel layer.
"""

import asyncio
import json
import os

import pytest
from bakery import bake, run
from servers import IN_CI, ServerUnavailable, redis_server, uvicorn_server
from websockets.asyncio.client import connect

SECRET_KEY = "live-" + "s3cret" * 10


@pytest.fixture
def redis_live():
    try:
        with redis_server() as server:
            yield server
    except ServerUnavailable as missing:
        if IN_CI:
            pytest.fail(f"{missing} (required when CI=true)")
        pytest.skip(str(missing))


def join(server, room: str):
    return connect(f"ws://127.0.0.1:{server.port}/ws/rooms/{room}/", origin=server.url)


async def exchange(a, b) -> None:
    async with join(a, "lobby") as on_a, join(b, "lobby") as on_b, join(b, "other") as elsewhere:
        # Both sockets are in the group once each has received its own echo.
        for client, text in ((on_a, "a is here"), (on_b, "b is here")):
            await client.send(json.dumps({"message": text}))
        seen_on_b = [json.loads(await asyncio.wait_for(on_b.recv(), 10)) for _ in range(2)]
        assert {m["message"] for m in seen_on_b} == {"a is here", "b is here"}

        for n in range(5):
            await on_a.send(json.dumps({"message": f"hello {n}"}))
        received = [json.loads(await asyncio.wait_for(on_b.recv(), 10)) for _ in range(5)]
        assert [m["message"] for m in received] == [f"hello {n}" for n in range(5)]
        assert {(m["room"], m["user"]) for m in received} == {("lobby", "anonymous")}

        with pytest.raises(TimeoutError):
            await asyncio.wait_for(elsewhere.recv(), 0.5)


def test_a_message_sent_on_one_process_arrives_on_the_other(tmp_path, environments, redis_live):
    project = bake(tmp_path, use_channels=True, broker="redis")
    python = environments.python_for(project)
    env = {
        **os.environ,
        "DJANGO_ENV_FILE": "/nonexistent/.env",
        "DJANGO_SECRET_KEY": SECRET_KEY,
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'live.sqlite3'}",
        "REDIS_URL": redis_live.url,
    }
    run([python, "manage.py", "migrate", "--noinput"], cwd=project, env=env)
    with uvicorn_server(python, project, env) as a, uvicorn_server(python, project, env) as b:
        asyncio.run(exchange(a, b))
    for server in (a, b):
        assert "Traceback" not in server.output(), server.output()
