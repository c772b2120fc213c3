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

Then, with --clients streams (default 1,000) split over two uvicorn processes
that share one Redis, it publishes --events events through the first process,
--interval seconds apart, and times every (event, stream) delivery from the
moment the publish was sent: the cross-process latency a deployment with
several workers sees.
Everything binds to 127.0.0.1 and is stopped at the end.

    uv run python -m bench.sse [--max-streams 10000] [--step 1000] [--seconds 120]
        [--clients 1000] [--events 50] [--interval 0.1]
"""

import argparse
import asyncio
import contextlib
import json
import math
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
from servers import redis_server

from bench import ENV, quantile_ms, serving

BROKERS = ("memory", "redis")
SERVER_ENV = {**ENV, "DJANGO_ENV_FILE": "/nonexistent", "SSE_HEARTBEAT_SECONDS": "300"}
# Opens in flight at once: far below uvicorn's listen backlog (2048).
CONNECT_CONCURRENCY = 100
OPEN_TIMEOUT = 10.0
FAN_OUT_TIMEOUT = 60.0
TEARDOWN_TIMEOUT = 60.0
DRAIN_TIMEOUT = 10.0  # after the last publish, for the stragglers
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
    steps: list[tuple[int, Sample]] = field(default_factory=list)  # streams open, worker
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
        result.steps = [(0, zero)]
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
            result.steps.append((len(streams), peak))
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


def prepare(broker: str, workdir: Path) -> Path:
    """Bake the project for `broker` and install it."""
    project = bake(workdir / broker, broker=broker)
    run(["uv", "sync", "--quiet"], cwd=project)
    return project


def set_up(project: Path, env: dict) -> str:
    """Migrate the database `env` names and create an API token; the token."""
    python = str(project / ".venv/bin/python")
    run([python, "manage.py", "migrate", "--noinput"], cwd=project, env=env)
    created = run([python, "manage.py", "create_api_token", "bench"], cwd=project, env=env)
    return created.stdout.split()[-1]


def raise_open_files_limit(streams: int) -> None:
    """The worker and this client each hold one socket per stream; uvicorn inherits this."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if streams > hard - 200:
        sys.exit(f"{streams} streams do not fit the open-files limit {hard}")


def bench(broker: str, project: Path, workdir: Path, args) -> Result:
    result = Result(broker)
    env = {**SERVER_ENV, "DATABASE_URL": f"sqlite:///{workdir / f'ramp-{broker}.sqlite3'}"}
    log = workdir / f"uvicorn-{broker}.log"
    with contextlib.ExitStack() as stack:
        if broker == "redis":
            env["REDIS_URL"] = stack.enter_context(redis_server()).url
        token = set_up(project, env)
        [server] = stack.enter_context(serving(project, env, [log]))
        pid = server.process.pid
        result.nofile = nofile_limit(pid)
        print(f"\nbroker={broker}: uvicorn pid {pid}, open files {result.nofile}")
        asyncio.run(measure(server.port, pid, token, args, result))
    result.shutdown = server.shutdown
    result.log = log.read_text().splitlines()
    return result


@dataclass
class Delivery:
    """--events events to --clients streams over two processes sharing Redis."""

    clients: list[int] = field(default_factory=list)  # streams open, per process
    open_failures: Counter = field(default_factory=Counter)
    published: int = 0
    publish_failures: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # every (event, stream)
    local: list[float] = field(default_factory=list)  # streams on the publishing process
    remote: list[float] = field(default_factory=list)  # streams on the other one
    last: list[float] = field(default_factory=list)  # per event, until every stream had it
    duplicates: int = 0
    out_of_order: int = 0
    stream_errors: Counter = field(default_factory=Counter)
    missing: Counter = field(default_factory=Counter)  # (process, event): streams without it
    shutdown: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    @property
    def expected(self) -> int:
        return self.published * sum(self.clients)


async def deliver(ports: list[int], token: str, args, result: Delivery) -> None:
    deadline = time.monotonic() + args.seconds
    streams: list[list[Stream]] = []
    for index, port in enumerate(ports):
        share = args.clients // len(ports) + (index < args.clients % len(ports))
        opened: list[Stream] = []
        await open_streams(port, share, deadline, opened, result.open_failures)
        streams.append(opened)
    result.clients = [len(opened) for opened in streams]
    everyone = [(index, stream) for index, opened in enumerate(streams) for stream in opened]
    sent = [math.nan] * args.events
    # arrivals[event][stream]: monotonic seconds
    arrivals = [[math.nan] * len(everyone) for _ in range(args.events)]

    received = 0

    async def listen(number: int, stream: Stream) -> None:
        nonlocal received
        previous = -1
        try:
            while True:
                chunk = await read_message(stream.reader)
                now = time.monotonic()
                # The server sends the events it has queued for a stream in one chunk.
                for message in chunk.split(b"\n\n"):
                    if b"\nevent: bench\n" not in message:
                        continue
                    event = json.loads(message.rpartition(b"data: ")[2])["n"]
                    if not math.isnan(arrivals[event][number]):
                        result.duplicates += 1
                        continue
                    arrivals[event][number] = now
                    received += 1
                    result.out_of_order += event < previous
                    previous = event
        except (EOFError, asyncio.IncompleteReadError, ConnectionError) as exc:
            result.stream_errors[type(exc).__name__] += 1

    readers = [asyncio.create_task(listen(n, stream)) for n, (_, stream) in enumerate(everyone)]
    try:
        started = time.monotonic()
        for event in range(args.events):
            # On a fixed schedule, so a slow publish does not space out the rest.
            await asyncio.sleep(max(0.0, started + event * args.interval - time.monotonic()))
            if time.monotonic() > deadline:
                break
            sent[event] = time.monotonic()
            status, body = await request(
                ports[0],
                f"POST /events/publish/ HTTP/1.1\r\nAuthorization: Bearer {token}\r\n"
                "Content-Type: application/json",
                json.dumps({"event": "bench", "data": {"n": event}}).encode(),
            )
            if status != 202:
                result.publish_failures[f"{status}: {body[:80]!r}"] += 1
                sent[event] = math.nan
                continue
            result.published += 1
        drain = time.monotonic() + DRAIN_TIMEOUT
        while time.monotonic() < drain and received < result.published * len(everyone):
            await asyncio.sleep(0.05)
    finally:
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await close_all([stream for _, stream in everyone])

    for event, times in enumerate(arrivals):
        if math.isnan(sent[event]):
            continue
        latencies = [t - sent[event] for t in times]
        for (process, _), latency in zip(everyone, latencies, strict=True):
            if math.isnan(latency):
                result.missing[process, event] += 1
                continue
            result.latencies.append(latency)
            (result.local if process == 0 else result.remote).append(latency)
        if latencies and not any(map(math.isnan, latencies)):
            result.last.append(max(latencies))
    for values in (result.latencies, result.local, result.remote, result.last):
        values.sort()


def bench_delivery(project: Path, workdir: Path, args) -> Delivery:
    """Serve the Redis project twice, on two ports sharing one Redis, and time deliveries."""
    result = Delivery()
    env = {**SERVER_ENV, "DATABASE_URL": f"sqlite:///{workdir / 'delivery.sqlite3'}"}
    logs = [workdir / f"uvicorn-delivery-{n}.log" for n in range(2)]
    with contextlib.ExitStack() as stack:
        env["REDIS_URL"] = stack.enter_context(redis_server()).url
        token = set_up(project, env)
        servers = stack.enter_context(serving(project, env, logs))
        ports = [server.port for server in servers]
        print(f"\ndelivery: uvicorn pids {[s.process.pid for s in servers]} on ports {ports}")
        asyncio.run(deliver(ports, token, args, result))
    result.shutdown = [server.shutdown for server in servers]
    result.log = [line for log in logs for line in log.read_text().splitlines()]
    return result


def delivery_report(result: Delivery, args) -> list[str]:
    rows = {
        "streams open (per process)": "+".join(map(str, result.clients)),
        "open failures": f"{result.open_failures.total()}",
        "events published / failed": f"{result.published} / {result.publish_failures.total()}",
        "deliveries received / expected": f"{len(result.latencies)} / {result.expected}",
        "lost / duplicated / out of order": (
            f"{result.expected - len(result.latencies)} / {result.duplicates} / "
            f"{result.out_of_order}"
        ),
        "streams ended by the server": f"{result.stream_errors.total()}",
        "latency median / p99 (ms)": (
            f"{quantile_ms(result.latencies, 0.5)} / {quantile_ms(result.latencies, 0.99)}"
        ),
        "median, publishing / other process": (
            f"{quantile_ms(result.local, 0.5)} / {quantile_ms(result.remote, 0.5)}"
        ),
        "every stream had it, med / p99": (
            f"{quantile_ms(result.last, 0.5)} / {quantile_ms(result.last, 0.99)}"
        ),
        "uvicorn log lines": f"{len(result.log)}",
    }
    if result.missing:
        rows["missed (process: event x streams)"] = ", ".join(
            f"{process}: {event} x {count}"
            for (process, event), count in sorted(result.missing.items())[:5]
        )
    lines = [
        f"{args.events} events, {args.interval:g} s apart, to {args.clients} GET /events/ "
        "streams, broker=redis, 2 uvicorn processes",
        "(latency: from sending POST /events/publish/ to the stream reading the event)",
    ]
    lines += [f"{label:<36}{value:>20}" for label, value in rows.items()]
    return lines


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


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-streams", type=int, default=10_000)
    parser.add_argument("--step", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=120, help="bound per broker and delivery")
    parser.add_argument("--broker", choices=BROKERS, action="append", help="default: both")
    parser.add_argument("--clients", type=int, default=1000, help="streams for the delivery run")
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between events")
    return parser


def measure_all(args) -> tuple[list[Result], Delivery]:
    """The ramp for each broker of `args`, then the delivery run."""
    if not shutil.which("redis-server"):
        sys.exit("redis-server is not installed: apt-get install redis-server")
    raise_open_files_limit(max(args.max_streams, args.clients))
    workdir = Path(tempfile.mkdtemp(prefix="bench-sse-"))
    try:
        ramps = args.broker or list(BROKERS)
        projects = {broker: prepare(broker, workdir) for broker in {*ramps, "redis"}}
        results = [bench(broker, projects[broker], workdir, args) for broker in ramps]
        return results, bench_delivery(projects["redis"], workdir, args)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    args = parser().parse_args()
    results, delivery = measure_all(args)
    report(results, args)
    print("\n" + "\n".join(delivery_report(delivery, args)))
    for failure, count in (delivery.open_failures + delivery.publish_failures).most_common(5):
        print(f"  {count} x {failure}")


if __name__ == "__main__":
    main()
