"""Server-Sent Events across two uvicorn processes sharing one real Redis.

Process A takes publishes, process B serves the streams: what B's clients
receive crossed Redis. Then Redis is killed and restarted mid-stream.
"""

import contextlib
import json
import queue
import threading
import time
from dataclasses import dataclass

import httpx
from bakery import bake, run
from servers import served_env, uvicorn_server


@dataclass
class Message:
    id: str | None
    event: str | None
    data: str | None


class Stream:
    """GET /events/ read on a thread, message by message."""

    def __init__(self, url: str, last_event_id: str | None = None):
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        self.messages: queue.Queue[Message | BaseException] = queue.Queue()
        self.lines: list[str] = []  # everything received, for failure messages
        self._client = httpx.Client(timeout=httpx.Timeout(5, read=30))
        self._response = self._client.send(
            self._client.build_request("GET", f"{url}/events/", headers=headers), stream=True
        )
        assert self._response.status_code == 200
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        fields: dict[str, str] = {}
        try:
            for line in self._response.iter_lines():
                self.lines.append(line)
                if line:
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")
                    continue
                if set(fields) & {"id", "data"}:
                    self.messages.put(
                        Message(fields.get("id"), fields.get("event"), fields.get("data"))
                    )
                fields = {}
        except Exception as exc:  # closing the stream ends the read
            self.messages.put(exc)

    def next(self, seconds: float = 20) -> Message:
        try:
            item = self.messages.get(timeout=seconds)
        except queue.Empty:
            raise AssertionError(f"no message in {seconds:.0f}s; received {self.lines}") from None
        if isinstance(item, BaseException):
            raise item
        return item

    def events(self, count: int, seconds: float = 20) -> list[Message]:
        found = []
        deadline = time.monotonic() + seconds
        while len(found) < count:
            message = self.next(max(deadline - time.monotonic(), 0.01))
            if message.data is not None:
                found.append(message)
        return found

    def close(self) -> None:
        self._response.close()
        self._client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def publish(client: httpx.Client, url: str, token: str, event: str, data) -> httpx.Response:
    return client.post(
        f"{url}/events/publish/",
        json={"event": event, "data": data},
        headers={"Authorization": f"Bearer {token}"},
    )


def publish_when_ready(client, url, token, event, data, seconds: float = 30) -> str:
    """Publish, retrying while the broker answers 503 (Redis on its way back)."""
    deadline = time.monotonic() + seconds
    while True:
        response = publish(client, url, token, event, data)
        if response.status_code != 503 or time.monotonic() > deadline:
            assert response.status_code == 202, response.text
            return response.json()["id"]
        time.sleep(0.2)


def test_two_processes_share_events_through_redis(tmp_path, environments, own_redis):
    project = bake(tmp_path, use_sse=True, broker="redis")
    python = environments.python_for(project)
    env = served_env(tmp_path / "live.sqlite3", REDIS_URL=own_redis.url, SSE_HEARTBEAT_SECONDS="1")
    run([python, "manage.py", "migrate", "--noinput"], cwd=project, env=env)
    created = run([python, "manage.py", "create_api_token", "live"], cwd=project, env=env)
    token = created.stdout.split()[-1]

    with (
        uvicorn_server(python, project, env) as a,
        uvicorn_server(python, project, env) as b,
        httpx.Client(timeout=10) as client,
        contextlib.ExitStack() as streams,
    ):
        # A client on B receives, in order, what is published through A.
        first = streams.enter_context(Stream(b.url))
        assert first.next().data is None  # the retry/id message
        sent = [publish_when_ready(client, a.url, token, "step", {"n": n}) for n in range(5)]
        received = first.events(5)
        assert [m.id for m in received] == sent
        assert [json.loads(m.data) for m in received] == [{"n": n} for n in range(5)]

        # It drops; what is published meanwhile is replayed on reconnect, then live.
        first.close()
        missed = [publish_when_ready(client, a.url, token, "step", {"n": n}) for n in range(5, 8)]
        second = streams.enter_context(Stream(b.url, last_event_id=sent[-1]))
        live = publish_when_ready(client, a.url, token, "step", {"n": 8})
        assert [m.id for m in second.events(4)] == [*missed, live]

        # Redis dies mid-stream: publishing answers 503, streams stay open.
        own_redis.stop()
        assert publish(client, a.url, token, "lost", 0).status_code == 503
        own_redis.start()
        after = [publish_when_ready(client, a.url, token, "after", {"n": n}) for n in range(5)]
        # B's reader reconnects by itself: the open stream gets everything...
        assert [m.id for m in second.events(5, seconds=30)] == after
        # ...and a client that reconnects with an id from before the restart too.
        third = streams.enter_context(Stream(b.url, last_event_id=live))
        assert [m.id for m in third.events(5)] == after

    for server in (a, b):
        assert "Traceback" not in server.output(), server.output()
