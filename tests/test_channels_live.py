"""Websocket rooms across two uvicorn processes sharing one real Redis.

A client on process A and a client on process B join the same room: what A's
client sends reaches B's only through the Redis channel layer.
"""

import asyncio
import json

import pytest
from bakery import bake, run
from servers import served_env, uvicorn_server
from websockets.asyncio.client import connect


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


def test_a_message_sent_on_one_process_arrives_on_the_other(tmp_path, environments, own_redis):
    project = bake(tmp_path, use_channels=True, broker="redis")
    python = environments.python_for(project)
    env = served_env(tmp_path / "live.sqlite3", REDIS_URL=own_redis.url)
    run([python, "manage.py", "migrate", "--noinput"], cwd=project, env=env)
    with uvicorn_server(python, project, env) as a, uvicorn_server(python, project, env) as b:
        asyncio.run(exchange(a, b))
    for server in (a, b):
        assert "Traceback" not in server.output(), server.output()
