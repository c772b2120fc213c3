"""Server-Sent Events under load: memory per idle stream, streams held, fan-out time.

For each broker (memory, then redis against a throwaway redis-server) bakes the
project, serves it as production would (uvicorn, one worker, DEBUG off, SQLite,
heartbeats far apart so idle streams stay idle) and opens idle GET /events/
streams from plain asyncio sockets, --step at a time, reading the worker's RSS,
threads and file descriptors from /proc after each step. Ramping stops at
--max-streams, after --seconds, or as soon as an open fails or an open stream
ends. With every stream open it publishes one event through POST
/events/publish/ and times its arrival on each stream, then closes them all and
times how long the worker takes to give back their sockets and threads (and a
GET /healthz sent meanwhile).
Everything binds to 127.0.0.1 and is stopped at the end.

    uv run python -m bench.sse [--max-streams 10000] [--step 1000] [--seconds 120]
"""

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bakery import bake, run
from servers import redis_server, wait_for_port

from bench import ENV, serve, stop

BROKERS = ("memory", "redis")
SERVER_ENV = {**ENV, "DJANGO_ENV_FILE": "/nonexistent", "SSE_HEARTBEAT_SECONDS": "300"}
# Opens in flight at once: far below uvicorn's listen backlog (2048).
CONNECT_CONCURRENCY = 100
OPEN_TIMEOUT = 10.0
FAN_OUT_TIMEOUT = 60.0
TEARDOWN_TIMEOUT = 60.0
WARM_UP_STREAMS = 50
REQUEST = b"GET /events/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
MiB = 1024  # VmRSS is in KiB


@dataclass
class Stream:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    @property
    def alive(self) -> bool:
        return not self.reader.at_eof() and self.reader.exception() is None


@dataclass(frozen=True)
class Sample:
    """The uvicorn worker, from /proc."""

    rss: int  # KiB
    threads: int
    fds: int

    @classmethod
    def of(cls, pid: int) -> "Sample":
        status = dict(
            line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        )
        return cls(
            rss=int(status["VmRSS"].split()[0]),
            threads=int(status["Threads"]),
            fds=len(os.listdir(f"/proc/{pid}/fd")),
        )


@dataclass
class Result:
    broker: str
    nofile: str = ""
    zero: Sample | None = None  # after the warm-up, no stream open
    peak: Sample | None = None  # every stream open
    opened: int = 0  # at the peak
    open_seconds: float = 0.0
    stop: str = "--max-streams"
    open_failures: Counter = field(default_factory=Counter)
    lost: int = 0  # streams that ended while idle
    held: int = 0
    latencies: list[float] = field(default_factory=list)
    fan_out_failures: Counter = field(default_factory=Counter)
    publish_seconds: float = 0.0
    after_close: Sample | None = None
    teardown_seconds: float = 0.0  # from closing every stream to threads and fds back at zero
    healthz_open: float = 0.0  # GET /healthz with every stream open
    healthz_teardown: float = 0.0  # GET /healthz sent just after closing every stream
    shutdown: str = ""
    log: list[str] = field(default_factory=list)


def nofile_limit(pid: int) -> str:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return "/".join(line.split()[3:5])
    return "?"


async def read_message(reader: asyncio.StreamReader) -> bytes:
    """The chunked body up to the end of the next SSE message."""
    message = b""
    while not message.endswith(b"\n\n"):
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        if size == 0:
            raise EOFError("the server ended the stream")
        message += (await reader.readexactly(size + 2))[:-2]
    return message


async def open_stream(port: int) -> Stream:
    """GET /events/ and read its first message (retry and id): the stream is open."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(REQUEST)
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200 ") or b"text/event-stream" not in head:
            raise ConnectionError(f"unexpected response: {head[:120]!r}")
        first = await read_message(reader)
        if not first.startswith(b"retry: "):
            raise ConnectionError(f"unexpected first message: {first[:120]!r}")
    except BaseException:
        writer.close()
        raise
    return Stream(reader, writer)


async def open_streams(
    port: int, count: int, deadline: float, streams: list[Stream], failures: Counter
) -> None:
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one() -> None:
        async with gate:
            if time.monotonic() > deadline:
                return
            try:
                async with asyncio.timeout(OPEN_TIMEOUT):
                    streams.append(await open_stream(port))
            except Exception as exc:
                failures[f"{type(exc).__name__}: {exc}"[:100]] += 1

    await asyncio.gather(*(one() for _ in range(count)))


async def close_all(streams: list[Stream]) -> None:
    for stream in streams:
        stream.writer.close()
    await asyncio.gather(*(s.writer.wait_closed() for s in streams), return_exceptions=True)
    streams.clear()


async def request(port: int, head: str, body: bytes = b"") -> tuple[int, bytes]:
    """One request on its own connection: the status and the body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"{head}\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + body
        )
        response = await reader.read()
    finally:
        writer.close()
    return int(response.split(b" ", 2)[1]), response.partition(b"\r\n\r\n")[2]


async def healthz_seconds(port: int) -> float:
    started = time.monotonic()
    status, body = await request(port, "GET /healthz HTTP/1.1")
    if status != 200:
        raise RuntimeError(f"GET /healthz answered {status}: {body[:200]!r}")
    return time.monotonic() - started


async def fan_out(port: int, token: str, streams: list[Stream], result: Result) -> None:
    """Publish one event; record the seconds until each stream had it."""

    async def receive(stream: Stream) -> float:
        while b"\nevent: bench\n" not in await read_message(stream.reader):
            pass
        return time.monotonic()

    result.latencies.clear()
    result.fan_out_failures.clear()
    tasks = [asyncio.create_task(receive(stream)) for stream in streams]
    started = time.monotonic()
    status, body = await request(
        port,
        f"POST /events/publish/ HTTP/1.1\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json",
        json.dumps({"event": "bench", "data": {"streams": len(streams)}}).encode(),
    )
    result.publish_seconds = time.monotonic() - started
    if status != 202:
        for task in tasks:
            task.cancel()
        raise RuntimeError(f"POST /events/publish/ answered {status}: {body[:200]!r}")
    done, pending = await asyncio.wait(tasks, timeout=FAN_OUT_TIMEOUT) if tasks else ((), ())
    for task in pending:
        task.cancel()
    for task in done:
        if task.exception() is None:
            result.latencies.append(task.result() - started)
        else:
            result.fan_out_failures[type(task.exception()).__name__] += 1
    if pending:
        result.fan_out_failures[f"not received in {FAN_OUT_TIMEOUT:.0f}s"] += len(pending)
    result.latencies.sort()


async def measure(port: int, pid: int, token: str, args, result: Result) -> None:
    streams: list[Stream] = []
    try:
        # Warm up: load every module a stream and a publish touch, then let go.
        await open_streams(port, WARM_UP_STREAMS, time.monotonic() + 30, streams, Counter())
        await fan_out(port, token, streams, result)
        await close_all(streams)
        await asyncio.sleep(1)
        zero = result.zero = result.peak = Sample.of(pid)
        print(f"  {0:>6} streams  RSS {zero.rss / MiB:7.1f} MiB  threads {zero.threads}")

        deadline = time.monotonic() + args.seconds
        while len(streams) < args.max_streams:
            if time.monotonic() > deadline:
                result.stop = "--seconds"
                break
            target = min(len(streams) + args.step, args.max_streams)
            started = time.monotonic()
            await open_streams(port, target - len(streams), deadline, streams, result.open_failures)
            seconds = time.monotonic() - started
            result.open_seconds += seconds
            await asyncio.sleep(0.5)  # let the worker finish what the opens started
            peak, result.opened = Sample.of(pid), len(streams)
            result.peak = peak
            per_stream = (peak.rss - zero.rss) / max(len(streams), 1)
            print(
                f"  {len(streams):>6} streams  RSS {peak.rss / MiB:7.1f} MiB  "
                f"{per_stream:5.1f} KiB/stream  threads {peak.threads}  fds {peak.fds}  "
                f"opened in {seconds:4.1f}s"
            )
            result.lost = sum(not stream.alive for stream in streams)
            if result.lost:
                result.stop = "an idle stream ended"
                break
            if result.open_failures:
                result.stop = "an open failed"
                break
            if len(streams) < target:
                result.stop = "--seconds"
                break

        result.held = sum(stream.alive for stream in streams)
        await fan_out(port, token, [s for s in streams if s.alive], result)
        result.healthz_open = await healthz_seconds(port)
    finally:
        started = time.monotonic()
        await close_all(streams)
    # How long another request waits while the worker lets go of every stream.
    healthz = asyncio.create_task(healthz_seconds(port))
    # Every closed stream should give back its socket and thread.
    while time.monotonic() - started < TEARDOWN_TIMEOUT:
        result.after_close = Sample.of(pid)
        if result.zero is None or (
            result.after_close.fds <= result.zero.fds
            and result.after_close.threads <= result.zero.threads
        ):
            break
        await asyncio.sleep(0.1)
    result.teardown_seconds = time.monotonic() - started
    result.healthz_teardown = await healthz


def bench(broker: str, workdir: Path, args) -> Result:
    result = Result(broker)
    project = bake(workdir / broker, broker=broker)
    run(["uv", "sync", "--quiet"], cwd=project)
    python = str(project / ".venv/bin/python")
    env = {**SERVER_ENV, "DATABASE_URL": f"sqlite:///{project / 'bench.sqlite3'}"}
    log = workdir / f"uvicorn-{broker}.log"
    with contextlib.ExitStack() as stack:
        if broker == "redis":
            env["REDIS_URL"] = stack.enter_context(redis_server()).url
        run([python, "manage.py", "migrate", "--noinput"], cwd=project, env=env)
        created = run([python, "manage.py", "create_api_token", "bench"], cwd=project, env=env)
        token = created.stdout.split()[-1]
        # Inherits this process's raised RLIMIT_NOFILE.
        server, port = serve(project, env, log)
        try:
            wait_for_port(port)
            result.nofile = nofile_limit(server.pid)
            print(f"\nbroker={broker}: uvicorn pid {server.pid}, open files {result.nofile}")
            asyncio.run(measure(port, server.pid, token, args, result))
        finally:
            result.shutdown = stop(server)
    result.log = log.read_text().splitlines()
    return result


def milliseconds(seconds: list[float]) -> str:
    if not seconds:
        return "-"
    low, middle, high = seconds[0], statistics.median(seconds), seconds[-1]
    return f"{low * 1000:.0f} / {middle * 1000:.0f} / {high * 1000:.0f}"


def report(results: list[Result], args) -> None:
    def rss(kib: int) -> str:
        return f"{kib / MiB:.1f}"

    rows = {
        "streams held, all alive": lambda r: f"{r.held}",
        "ramp stopped by": lambda r: r.stop,
        "RSS at 0 streams (MiB)": lambda r: rss(r.zero.rss),
        "RSS at max (MiB)": lambda r: rss(r.peak.rss),
        "KiB per idle stream": lambda r: f"{(r.peak.rss - r.zero.rss) / max(r.opened, 1):.1f}",
        "worker threads at 0 / max": lambda r: f"{r.zero.threads} / {r.peak.threads}",
        "opens per second": lambda r: f"{r.held / max(r.open_seconds, 1e-9):.0f}",
        "open failures": lambda r: f"{r.open_failures.total()}",
        "idle streams ended": lambda r: f"{r.lost}",
        "event received by": lambda r: f"{len(r.latencies)} / {r.held}",
        "POST /events/publish/ (ms)": lambda r: f"{r.publish_seconds * 1000:.0f}",
        "fan-out min/median/max (ms)": lambda r: milliseconds(r.latencies),
        "GET /healthz, streams open (ms)": lambda r: f"{r.healthz_open * 1000:.0f}",
        "teardown after close (s)": lambda r: f"{r.teardown_seconds:.1f}",
        "GET /healthz in teardown (ms)": lambda r: f"{r.healthz_teardown * 1000:.0f}",
        "fds / threads after close": lambda r: f"{r.after_close.fds} / {r.after_close.threads}",
        "RSS after close (MiB)": lambda r: rss(r.after_close.rss),
        "uvicorn log lines": lambda r: f"{len(r.log)}",
    }
    print(
        f"\nIdle GET /events/ streams, uvicorn 1 worker, bounds: --max-streams "
        f"{args.max_streams} --step {args.step} --seconds {args.seconds}"
    )
    print(f"{'':<31}" + "".join(f"{r.broker:>20}" for r in results))
    for label, cell in rows.items():
        print(f"{label:<31}" + "".join(f"{cell(r):>20}" for r in results))
    for r in results:
        print(f"\nbroker={r.broker}: uvicorn {r.shutdown}")
        for failure, count in (r.open_failures + r.fan_out_failures).most_common(5):
            print(f"  {count} x {failure}")
        if r.log:
            print(f"  uvicorn log ({len(r.log)} lines), first and last:")
            for line in dict.fromkeys(r.log[:5] + r.log[-5:]):
                print(f"    {line[:300]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-streams", type=int, default=10_000)
    parser.add_argument("--step", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=120, help="ramp-up bound per broker")
    parser.add_argument("--broker", choices=BROKERS, action="append", help="default: both")
    args = parser.parse_args()
    if "redis" in (args.broker or BROKERS) and not shutil.which("redis-server"):
        sys.exit("redis-server is not installed: apt-get install redis-server")
    # The worker and this client each hold one socket per stream; uvicorn inherits this.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.max_streams > hard - 200:
        sys.exit(f"--max-streams {args.max_streams} does not fit the open-files limit {hard}")

    workdir = Path(tempfile.mkdtemp(prefix="bench-sse-"))
    try:
        results = [bench(broker, workdir, args) for broker in args.broker or BROKERS]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report(results, args)


if __name__ == "__main__":
    main()
