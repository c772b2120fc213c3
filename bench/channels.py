"""Websocket rooms: broadcast latency from one sender to every client in a room.

Bakes the project with use_channels for each broker and serves it as production
would (uvicorn, DEBUG off, SQLite, the per-connection rate limit raised out of
the way): broker=memory with one uvicorn process, broker=redis (a throwaway
redis-server) with one, then with two uvicorn processes on two ports sharing
that Redis, the clients split evenly between them. --clients websocket clients
join one room; one of them sends --messages messages, --interval seconds
apart. For every (message, client) pair it records the time from the send to
the client's receipt, and for every message the time until the last client had
it (fan-out completion); messages not received are counted as lost. The
clients run in this process, on the same cores as the server.
Everything binds to 127.0.0.1 and is stopped at the end.

    uv run python -m bench.channels [--clients 100] [--messages 200] [--interval 0.02]
        [--seconds 40] [--case memory|redis|redis-x2 ...]
"""

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from bakery import bake, run
from servers import redis_server
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench import ENV, quantile_ms, serving

CASES = {"memory": ("memory", 1), "redis": ("redis", 1), "redis-x2": ("redis", 2)}
# The rate limit (20 frames per 10 s by default) would close the sender.
SERVER_ENV = {**ENV, "ROOMS_RATE_LIMIT": "100000"}
ROOM = "bench"
CONNECT_CONCURRENCY = 20
CONNECT_TIMEOUT = 10.0
WARM_UP_MESSAGES = 3
WARM_UP_TIMEOUT = 10.0
DRAIN_TIMEOUT = 10.0  # after the last send, for the stragglers
TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    case: str
    processes: int
    clients: list[int] = field(default_factory=list)  # connected, per process
    connect_failures: Counter = field(default_factory=Counter)
    connect_seconds: float = 0.0
    warm: bool = False  # every client had every warm-up message
    deflate: bool = False  # the sender negotiated permessage-deflate
    sent: int = 0
    stop: str = "--messages"
    received: int = 0  # (message, client) pairs
    duplicates: int = 0
    errors: Counter = field(default_factory=Counter)  # error frames and closed sockets
    latencies: list[float] = field(default_factory=list)  # every (message, client) pair
    local: list[float] = field(default_factory=list)  # clients on the sender's process
    remote: list[float] = field(default_factory=list)  # clients on the other process
    last: list[float] = field(default_factory=list)  # per message every client had
    # Split at the server's group_send (the message's sent_at, wall clock): before, after.
    uplink: list[float] = field(default_factory=list)
    downlink: list[float] = field(default_factory=list)  # to the last client
    # Latencies of the first and of the last quarter of the messages.
    quarters: tuple[list[float], list[float]] = field(default_factory=lambda: ([], []))
    cpu: Counter = field(default_factory=Counter)  # seconds while sending
    send_seconds: float = 0.0
    shutdown: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    @property
    def expected(self) -> int:
        return self.sent * sum(self.clients)

    def cpu_percent(self, name: str) -> float:
        """Of one core, while sending."""
        return 100 * self.cpu[name] / self.send_seconds if self.send_seconds else math.nan


def cpu_seconds(pids: dict[str, int]) -> Counter:
    """CPU seconds used so far by each of `pids`, this process and the whole machine."""
    used = Counter(clients=time.process_time())
    for name, pid in pids.items():
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        used[name.split()[0]] += (int(fields[11]) + int(fields[12])) / TICK  # utime + stime
    ticks = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    used["machine"] = (sum(ticks[:8]) - ticks[3] - ticks[4]) / TICK  # all but idle and iowait
    return used


class Room:
    """The clients, their sockets and every arrival time."""

    def __init__(self, ports: list[int], count: int, messages: int):
        self.ports, self.count = ports, count
        self.sockets: dict[int, ClientConnection] = {}  # client index -> socket
        self.arrivals = [[math.nan] * count for _ in range(messages)]
        self.sent = [math.nan] * messages  # monotonic
        self.wall = time.time() - time.monotonic()  # to compare with the server's sent_at
        self.server_at = [math.nan] * messages  # the message's sent_at, from the first arrival
        self.warm = [0] * count
        self.received = 0
        self.duplicates = 0
        self.errors: Counter = Counter()
        self.readers: list[asyncio.Task] = []

    def port_of(self, index: int) -> int:
        return self.ports[index % len(self.ports)]  # client 0, the sender, on the first

    async def join(self, deadline: float, failures: Counter) -> None:
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def one(index: int) -> None:
            port = self.port_of(index)
            async with gate:
                if time.monotonic() > deadline:
                    failures["--seconds"] += 1
                    return
                try:
                    async with asyncio.timeout(CONNECT_TIMEOUT):
                        socket = await connect(
                            f"ws://127.0.0.1:{port}/ws/rooms/{ROOM}/",
                            origin=f"http://127.0.0.1:{port}",
                            max_queue=None,  # never stop reading: keep the timing honest
                        )
                except Exception as exc:
                    failures[f"{type(exc).__name__}: {exc}"[:100]] += 1
                    return
            self.sockets[index] = socket
            self.readers.append(asyncio.create_task(self.listen(index, socket)))

        await asyncio.gather(*(one(index) for index in range(self.count)))

    async def listen(self, index: int, socket: ClientConnection) -> None:
        try:
            async for frame in socket:
                now = time.monotonic()
                data = json.loads(frame)
                if "error" in data:
                    self.errors[f"error frame: {data['error']}"[:100]] += 1
                    continue
                kind, _, number = data["message"].partition(" ")
                if kind == "warm":
                    self.warm[index] += 1
                    continue
                arrivals = self.arrivals[int(number)]
                if not math.isnan(arrivals[index]):
                    self.duplicates += 1
                    continue
                arrivals[index] = now
                self.received += 1
                if math.isnan(self.server_at[int(number)]):
                    self.server_at[int(number)] = datetime.fromisoformat(
                        data["sent_at"]
                    ).timestamp()
        except ConnectionClosed:
            pass  # counted below
        except Exception as exc:
            self.errors[f"{type(exc).__name__}: {exc}"[:100]] += 1
        if socket.close_code not in (None, 1000):
            self.errors[f"closed by the server: {socket.close_code} {socket.close_reason}"] += 1

    async def wait(self, condition, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def leave(self) -> None:
        await asyncio.gather(*(s.close() for s in self.sockets.values()), return_exceptions=True)
        await asyncio.gather(*self.readers, return_exceptions=True)


async def measure(ports: list[int], pids: dict[str, int], args, result: Result) -> None:
    deadline = time.monotonic() + args.seconds
    room = Room(ports, args.clients, args.messages)
    try:
        started = time.monotonic()
        await room.join(deadline, result.connect_failures)
        result.connect_seconds = time.monotonic() - started
        result.clients = [
            sum(room.port_of(i) == port for i in room.sockets) for port in dict.fromkeys(ports)
        ]
        sender = room.sockets.get(0)
        if sender is None:
            result.stop = "the sender did not connect"
            return
        result.deflate = bool(sender.protocol.extensions)
        # Every client is in the group once it has the warm-up messages.
        for n in range(WARM_UP_MESSAGES):
            await sender.send(json.dumps({"message": f"warm {n}"}))
        result.warm = await room.wait(
            lambda: all(room.warm[i] >= WARM_UP_MESSAGES for i in room.sockets),
            min(WARM_UP_TIMEOUT, deadline - time.monotonic()),
        )

        cpu = cpu_seconds(pids)
        started = time.monotonic()
        for n in range(args.messages):
            # On a fixed schedule, so a slow send does not space out the rest.
            await asyncio.sleep(max(0.0, started + n * args.interval - time.monotonic()))
            if time.monotonic() > deadline:
                result.stop = "--seconds"
                break
            room.sent[n] = time.monotonic()
            try:
                await sender.send(json.dumps({"message": f"bench {n}"}))
            except ConnectionClosed as closed:
                result.stop = f"sender closed: {closed.rcvd.code if closed.rcvd else '-'}"
                break
            result.sent = n + 1
        result.send_seconds = time.monotonic() - started
        result.cpu = cpu_seconds(pids) - cpu
        result.cpu["others"] = result.cpu.pop("machine", 0) - result.cpu.total()

        await room.wait(
            lambda: room.received >= result.sent * len(room.sockets),
            max(0.0, min(DRAIN_TIMEOUT, deadline - time.monotonic())),
        )
    finally:
        await room.leave()

    for n in range(result.sent):
        times = [room.arrivals[n][i] - room.sent[n] for i in room.sockets]
        for i, latency in zip(room.sockets, times, strict=True):
            if not math.isnan(latency):
                result.latencies.append(latency)
                (result.local if room.port_of(i) == ports[0] else result.remote).append(latency)
                if n < result.sent / 4 or n >= result.sent * 3 / 4:
                    result.quarters[n >= result.sent / 2].append(latency)
        uplink = room.server_at[n] - room.wall - room.sent[n]
        if not math.isnan(uplink):
            result.uplink.append(uplink)
        if times and not any(map(math.isnan, times)):  # then uplink is known too
            result.last.append(max(times))
            result.downlink.append(max(times) - uplink)
    result.received = len(result.latencies)
    result.duplicates = room.duplicates
    result.errors = room.errors
    for values in (
        result.latencies,
        result.local,
        result.remote,
        result.last,
        result.uplink,
        result.downlink,
        *result.quarters,
    ):
        values.sort()


def bench(case: str, project: Path, workdir: Path, args) -> Result:
    broker, processes = CASES[case]
    result = Result(case, processes)
    python = str(project / ".venv/bin/python")
    env = {**SERVER_ENV, "DATABASE_URL": f"sqlite:///{workdir / f'{case}.sqlite3'}"}
    logs = [workdir / f"uvicorn-{case}-{n}.log" for n in range(processes)]
    with contextlib.ExitStack() as stack:
        pids = {}
        if broker == "redis":
            redis = stack.enter_context(redis_server())
            env["REDIS_URL"] = redis.url
            pids["redis-server"] = redis.pid
        run([python, "manage.py", "migrate", "--noinput"], cwd=project, env=env)
        servers = stack.enter_context(serving(project, env, logs))
        ports = [server.port for server in servers]
        pids.update({f"uvicorn {n + 1}": s.process.pid for n, s in enumerate(servers)})
        print(f"\n{case}: uvicorn pids {[s.process.pid for s in servers]} on ports {ports}")
        asyncio.run(measure(ports, pids, args, result))
    result.shutdown = [server.shutdown for server in servers]
    result.log = [line for log in logs for line in log.read_text().splitlines()]
    return result


def report(results: list[Result], args) -> None:
    def both(values: list[float]) -> str:
        return f"{quantile_ms(values, 0.5)} / {quantile_ms(values, 0.99)}"

    rows = {
        "clients connected (per process)": lambda r: "+".join(map(str, r.clients)) or "0",
        "connect failures": lambda r: f"{r.connect_failures.total()}",
        "connect all (s)": lambda r: f"{r.connect_seconds:.2f}",
        "warm-up reached everyone": lambda r: "yes" if r.warm else "NO",
        "permessage-deflate": lambda r: "yes" if r.deflate else "no",
        "messages sent": lambda r: f"{r.sent} ({r.stop})",
        "sending took (s)": lambda r: f"{r.send_seconds:.2f}",
        "deliveries received / expected": lambda r: f"{r.received} / {r.expected}",
        "deliveries lost": lambda r: f"{r.expected - r.received}",
        "duplicates": lambda r: f"{r.duplicates}",
        "errors and server closes": lambda r: f"{r.errors.total()}",
        "latency median (ms)": lambda r: quantile_ms(r.latencies, 0.5),
        "latency p99 (ms)": lambda r: quantile_ms(r.latencies, 0.99),
        "latency max (ms)": lambda r: quantile_ms(r.latencies, 1.0),
        "last client median (ms)": lambda r: quantile_ms(r.last, 0.5),
        "last client p99 (ms)": lambda r: quantile_ms(r.last, 0.99),
        "median, sender's / other proc": lambda r: (
            f"{quantile_ms(r.local, 0.5)} / {quantile_ms(r.remote, 0.5)}"
        ),
        "median, 1st / 4th quarter": lambda r: " / ".join(quantile_ms(q, 0.5) for q in r.quarters),
        "send -> group_send med/p99": lambda r: both(r.uplink),
        "group_send -> last med/p99": lambda r: both(r.downlink),
        "CPU % uvicorn (all processes)": lambda r: f"{r.cpu_percent('uvicorn'):.0f}",
        "CPU % redis-server": lambda r: f"{r.cpu_percent('redis-server'):.0f}",
        "CPU % clients (this process)": lambda r: f"{r.cpu_percent('clients'):.0f}",
        "CPU % rest of the machine": lambda r: f"{r.cpu_percent('others'):.0f}",
        "uvicorn log lines": lambda r: f"{len(r.log)}",
    }
    print(
        f"\nWebsocket broadcast in one room: --clients {args.clients} --messages "
        f"{args.messages} --interval {args.interval} --seconds {args.seconds} (per case)"
    )
    print(f"{'':<32}" + "".join(f"{r.case:>18}" for r in results))
    for label, cell in rows.items():
        print(f"{label:<32}" + "".join(f"{cell(r):>18}" for r in results))
    print(
        f"\nThe {args.clients} clients run in this one process, sharing the {os.cpu_count()} "
        "cores with uvicorn and redis-server: latencies include their time waiting for a core.\n"
        "Latency: from the sender's send() to a client reading the frame, every (message, "
        "client) pair; last client: per message, until every client had it.\n"
        "send -> group_send: to the message's sent_at (server clock); group_send -> last: "
        "the rest of the last client's latency.\n"
        "CPU %: while sending, 100 = one core of "
        f"{os.cpu_count()}; the rest of the machine is anything else that ran meanwhile."
    )
    for r in results:
        print(f"\n{r.case}: uvicorn {'; '.join(r.shutdown)}")
        first, last = (statistics.median(q) * 1000 if q else math.nan for q in r.quarters)
        if last > 2 * first:
            print(
                f"  latency grew through the run ({first:.0f} ms median in the first quarter, "
                f"{last:.0f} ms in the last): the server fell behind one message per --interval"
            )
        if r.cpu_percent("others") > 10:
            print(f"  other processes used {r.cpu_percent('others'):.0f}% of a core meanwhile")
        for failure, count in (r.connect_failures + r.errors).most_common(5):
            print(f"  {count} x {failure}")
        if r.log:
            print(f"  uvicorn log ({len(r.log)} lines), first and last:")
            for line in dict.fromkeys(r.log[:5] + r.log[-5:]):
                print(f"    {line[:300]}")


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between sends")
    parser.add_argument("--seconds", type=float, default=40, help="wall-clock bound per case")
    parser.add_argument("--case", choices=CASES, action="append", help="default: all")
    return parser


def measure_all(args) -> list[Result]:
    """Bake once per broker, then run every case of `args`."""
    cases = args.case or list(CASES)
    if any(CASES[case][0] == "redis" for case in cases) and not shutil.which("redis-server"):
        sys.exit("redis-server is not installed: apt-get install redis-server")
    workdir = Path(tempfile.mkdtemp(prefix="bench-channels-"))
    try:
        projects = {}
        for broker in dict.fromkeys(CASES[case][0] for case in cases):
            projects[broker] = bake(workdir / broker, use_channels=True, broker=broker)
            run(["uv", "sync", "--quiet"], cwd=projects[broker])
        return [bench(case, projects[CASES[case][0]], workdir, args) for case in cases]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    args = parser().parse_args()
    report(measure_all(args), args)


if __name__ == "__main__":
    main()
