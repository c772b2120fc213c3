"""Room sockets across a Redis crash: every open socket hears its room again, or was closed.

A `broker=redis` bake served as its README says (uvicorn `--workers 2`), 40
sockets in one room spread over both workers, then Redis is killed (SIGKILL)
and started again on the same port with nothing in it. Group membership lived
only in Redis: before rooms/layers.py re-added it, 20 of 30 sockets (one
worker) and 13 of 30 (two workers) stayed open but never heard their room
again. Now each socket must receive room messages again, or have been closed
with a code on which the page (rooms.js) reconnects.
"""

import asyncio
import contextlib
import json
import time

from live import deploy, join, receive_json
from websockets.exceptions import ConnectionClosed, InvalidStatus

BAKE = {"database": "sqlite", "broker": "redis"}
SOCKETS = 40
# The server's codes for "reconnect": the room stopped working (1011), the
# worker is restarting (1012). rooms.js reconnects on any close.
RECONNECT_CODES = {1011, 1012}
# After Redis is back: how long every open socket has to hear the room again.
RECOVERY_SECONDS = 30


def test_every_open_socket_hears_its_room_after_redis_is_killed(
    tmp_path, environments, record_property
):
    with deploy(tmp_path, environments, **BAKE) as deployment:
        asyncio.run(asyncio.wait_for(redis_crash(deployment, record_property), 60))


class Listener:
    """One open socket and every room message it received, read in the background."""

    def __init__(self, socket):
        self.socket = socket
        self.messages: list[str] = []
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for frame in self.socket:
                self.messages.append(json.loads(frame).get("message"))

    @property
    def close_code(self) -> int | None:
        return self.socket.close_code if self.task.done() else None


async def speak(deployment, text: str, seconds: float = 20) -> None:
    """Send `text` to the room from a fresh socket, retrying while the room refuses (503)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            async with join(deployment, "recovery") as speaker:
                await speaker.send(json.dumps({"message": text}))
                # Our own copy means the room has it (it comes back through Redis).
                while (await receive_json(speaker, 5)).get("message") != text:
                    pass
                return
        except (InvalidStatus, ConnectionClosed, OSError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def redis_crash(deployment, record_property) -> None:
    workers = {worker.pid for worker in deployment.workers()}
    assert len(workers) == 2, workers
    async with contextlib.AsyncExitStack() as stack:
        # One at a time: a burst of connections tends to land on one worker.
        sockets, per_worker = [], dict.fromkeys(workers, 0)
        for _ in range(SOCKETS * 4):
            sockets.append(await stack.enter_async_context(join(deployment, "recovery")))
            per_worker[deployment.worker_of(sockets[-1].local_address[1])] += 1
            if len(sockets) >= SOCKETS and min(per_worker.values()) >= SOCKETS // 4:
                break
        assert min(per_worker.values()) >= SOCKETS // 4, per_worker
        listeners = [Listener(socket) for socket in sockets]
        await speak(deployment, "before")
        async with asyncio.timeout(10):
            while not all("before" in listener.messages for listener in listeners):
                await asyncio.sleep(0.05)

        deployment.redis.stop()  # SIGKILL: nothing is saved, as with no persistence
        await asyncio.sleep(1)
        deployment.redis.start()
        restarted = time.monotonic()

        # Probe the room until every socket heard a probe or was closed.
        probes = 0
        while time.monotonic() - restarted < RECOVERY_SECONDS:
            probes += 1
            await speak(deployment, f"probe {probes}")
            await asyncio.sleep(0.5)
            waiting = [
                listener
                for listener in listeners
                if listener.close_code is None
                and not any(str(m).startswith("probe") for m in listener.messages)
            ]
            if not waiting:
                break
        recovered = time.monotonic() - restarted

        # Steady state: one more message reaches every socket still open.
        await speak(deployment, "after")
        await asyncio.sleep(2)
        open_ = [listener for listener in listeners if listener.close_code is None]
        deaf = [listener for listener in open_ if "after" not in listener.messages]
        closed = [listener.close_code for listener in listeners if listener.close_code is not None]
        print(
            f"{len(open_)} of {len(sockets)} sockets (per worker: {per_worker}) stayed open, "
            f"{len(deaf)} of them deaf, {recovered:.1f}s after Redis was back ({probes} probes); "
            f"closed: {sorted(closed)}"
        )
        record_property("measured:room_recovered_after_redis_restart", round(recovered, 3))
        assert deaf == [], f"{len(deaf)} open sockets never heard their room again"
        assert set(closed) <= RECONNECT_CODES, closed
        for listener in listeners:
            listener.task.cancel()
