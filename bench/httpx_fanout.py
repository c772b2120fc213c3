"""GET /api/dashboard/ fan-out: N slow upstreams at once vs one after another.

Bakes the project with use_httpx and starts one local upstream on loopback (a
stdlib asyncio HTTP/1.1 server with keep-alive) whose GET /delay/<ms> answers
after sleeping that long. For each --sources N it serves the project as
production would (uvicorn, one worker, DEBUG off, SQLite) with N dashboard
sources all pointing at /delay/<--latency>, DASHBOARD_CONCURRENCY = N and
DASHBOARD_TIMEOUT = 10 s, warms it up, then times --requests GET
/api/dashboard/ one after another from this process. One more case keeps the
largest N but sets DASHBOARD_CONCURRENCY = --limited-concurrency, to show the
semaphore at work (about ceil(N / C) x latency). The baseline is the same N
upstream calls made one after another with one httpx.AsyncClient from this
process (median of --sequential-requests rounds), next to the N x latency it
should cost. The upstream counts, per case, the connections it accepted, the
requests it answered and the most it had in flight at once.
Everything binds to 127.0.0.1 and is stopped at the end.

    uv run python -m bench.httpx_fanout [--sources 1 5 10 20] [--latency 200]
        [--requests 10] [--sequential-requests 3] [--limited-concurrency 5]
"""

import argparse
import asyncio
import math
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from bakery import bake, run
from servers import free_port, wait_for_port

from bench import ENV, serve, stop

DASHBOARD_TIMEOUT = 10.0
# The shared client's pool defaults (config/settings.py); raised only for a larger N.
MAX_CONNECTIONS = 100
MAX_KEEPALIVE_CONNECTIONS = 20
WARM_UP_REQUESTS = 2
CLIENT_TIMEOUT = 60.0

# GET /delay/<ms> answers {"delay_ms": ms} after sleeping ms milliseconds; GET
# /stats answers the connections accepted, the requests answered and the most
# /delay requests in flight at once since the previous /stats. Keep-alive
# unless the client says Connection: close. Standard library only.
UPSTREAM = r"""
import asyncio, json, sys

stats = {"connections": 0, "requests": 0, "max_in_flight": 0}
in_flight = 0


def response(status, body):
    payload = json.dumps(body).encode()
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload


async def answer(target):
    global in_flight
    path = target.split("?", 1)[0]
    if path == "/stats":
        body = dict(stats)
        stats.update(connections=0, requests=0, max_in_flight=0)
        return response("200 OK", body)
    if path.startswith("/delay/") and path[7:].isdigit():
        stats["requests"] += 1
        in_flight += 1
        stats["max_in_flight"] = max(stats["max_in_flight"], in_flight)
        try:
            await asyncio.sleep(int(path[7:]) / 1000)
        finally:
            in_flight -= 1
        return response("200 OK", {"delay_ms": int(path[7:])})
    return response("404 Not Found", {"error": "not found"})


async def handle(reader, writer):
    stats["connections"] += 1
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip().lower()
            length = int(headers.get("content-length", "0"))
            if length:
                await reader.readexactly(length)
            writer.write(await answer(target))
            await writer.drain()
            if headers.get("connection") == "close":
                return
    finally:
        writer.close()


async def main(port):
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


asyncio.run(main(int(sys.argv[1])))
"""


@dataclass
class Case:
    sources: int
    concurrency: int
    latency: int  # ms
    seconds: list[float] = field(default_factory=list)  # wall time per dashboard request
    slowest: list[float] = field(default_factory=list)  # the largest elapsed_ms per answer
    failures: Counter = field(default_factory=Counter)
    upstream: dict = field(default_factory=dict)  # /stats over the timed requests
    shutdown: str = ""
    log: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"N={self.sources} C={self.concurrency}"

    @property
    def ideal(self) -> int:
        """ms: the latency once per wave of DASHBOARD_CONCURRENCY sources."""
        return math.ceil(self.sources / self.concurrency) * self.latency


def delay_url(port: int, latency: int) -> str:
    return f"http://127.0.0.1:{port}/delay/{latency}"


async def upstream_stats(client: httpx.AsyncClient, port: int) -> dict:
    return (await client.get(f"http://127.0.0.1:{port}/stats")).json()


async def time_dashboard(port: int, upstream_port: int, requests: int, case: Case) -> None:
    url = f"http://127.0.0.1:{port}/api/dashboard/"
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as client:

        async def one() -> float:
            started = time.perf_counter()
            response = await client.get(url)
            seconds = time.perf_counter() - started
            if response.status_code != 200:
                case.failures[f"dashboard answered {response.status_code}"] += 1
                return seconds
            sources = response.json()["sources"]
            if len(sources) != case.sources:
                case.failures[f"{len(sources)} sources in the answer"] += 1
            for entry in sources.values():
                if not entry["ok"]:
                    case.failures[f"source: {entry.get('error')}"] += 1
                elif entry["data"] != {"delay_ms": case.latency}:
                    case.failures[f"source data: {entry['data']!r:.80}"] += 1
            case.slowest.append(max(entry["elapsed_ms"] for entry in sources.values()))
            return seconds

        for _ in range(WARM_UP_REQUESTS):
            await one()
        case.failures.clear()
        case.slowest.clear()
        await upstream_stats(client, upstream_port)  # reset
        for _ in range(requests):
            case.seconds.append(await one())
        case.upstream = await upstream_stats(client, upstream_port)


async def time_sequential(upstream_port: int, sources: int, latency: int, rounds: int) -> list:
    """Seconds per round of `sources` GETs, one after another on one client."""
    url = delay_url(upstream_port, latency)
    rounds_seconds = []
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as client:
        (await client.get(url)).raise_for_status()  # warm up: open the connection
        for _ in range(rounds):
            started = time.perf_counter()
            for _ in range(sources):
                (await client.get(url)).raise_for_status()
            rounds_seconds.append(time.perf_counter() - started)
    return rounds_seconds


def bench(case: Case, project: Path, env: dict, upstream_port: int, workdir: Path, args) -> None:
    sources = ",".join(
        f"s{n}={delay_url(upstream_port, case.latency)}" for n in range(case.sources)
    )
    env = {
        **env,
        "DASHBOARD_SOURCES": sources,
        "DASHBOARD_CONCURRENCY": str(case.concurrency),
        "DASHBOARD_TIMEOUT": str(DASHBOARD_TIMEOUT),
        # Every request makes its own round of calls: the cost being measured.
        "DASHBOARD_CACHE_SECONDS": "0",
        "HTTPX_MAX_CONNECTIONS": str(max(MAX_CONNECTIONS, case.sources)),
        "HTTPX_MAX_KEEPALIVE_CONNECTIONS": str(max(MAX_KEEPALIVE_CONNECTIONS, case.sources)),
    }
    log = workdir / f"uvicorn-{case.sources}-{case.concurrency}.log"
    server, port = serve(project, env, log)
    try:
        wait_for_port(port)
        asyncio.run(time_dashboard(port, upstream_port, args.requests, case))
    finally:
        case.shutdown = stop(server)
    case.log = log.read_text().splitlines()
    median = statistics.median(case.seconds) * 1000
    print(f"  {case.name}: median {median:.0f} ms over {len(case.seconds)} requests")


def report(cases: list[Case], sequential: dict[int, list[float]], args) -> None:
    print(
        f"\nGET /api/dashboard/, uvicorn 1 worker, N sources each answering after "
        f"{args.latency} ms, {args.requests} requests per row one after another "
        f"(sequential baseline: median of {args.sequential_requests} rounds)"
    )
    header = (
        f"{'N':>4}{'C':>4}{'fan-out median':>16}{'min-max':>13}{'ceil(N/C)xL':>13}"
        f"{'N x L':>8}{'sequential':>12}{'seq/fan-out':>13}{'slowest src':>13}"
        f"{'upstream conns/reqs/peak':>26}"
    )
    print(header)
    print(f"{'':>8}{'ms':>16}{'ms':>13}{'ms':>13}{'ms':>8}{'ms':>12}{'x':>13}{'ms':>13}")
    for case in cases:
        fan_out = statistics.median(case.seconds) * 1000
        spread = f"{min(case.seconds) * 1000:.0f}-{max(case.seconds) * 1000:.0f}"
        baseline = statistics.median(sequential[case.sources]) * 1000
        slowest = f"{statistics.median(case.slowest):.0f}" if case.slowest else "-"
        upstream = "/".join(
            str(case.upstream.get(key, "?")) for key in ("connections", "requests", "max_in_flight")
        )
        print(
            f"{case.sources:>4}{case.concurrency:>4}{fan_out:>16.0f}{spread:>13}"
            f"{case.ideal:>13}{case.sources * args.latency:>8}{baseline:>12.0f}"
            f"{baseline / fan_out:>13.1f}{slowest:>13}{upstream:>26}"
        )
    print(
        "\nN: sources, C: DASHBOARD_CONCURRENCY, L: --latency; slowest src: the largest "
        "elapsed_ms in an answer (median); upstream: connections accepted, /delay requests "
        "answered and most in flight at once during the timed requests."
    )
    for case in cases:
        extra = [f"uvicorn {case.shutdown}"]
        if case.failures:
            extra.append("failures: " + ", ".join(f"{n} x {f}" for f, n in case.failures.items()))
        print(f"{case.name}: " + "; ".join(extra))
        if case.log:
            print(f"  uvicorn log ({len(case.log)} lines), first and last:")
            for line in dict.fromkeys(case.log[:5] + case.log[-5:]):
                print(f"    {line[:300]}")


def measure(args) -> tuple[list[Case], dict[int, list[float]], str, list[str]]:
    """Run every case and the sequential baseline; also how the upstream stopped, and its log."""
    largest = max(args.sources)
    cases = [Case(n, n, args.latency) for n in sorted(set(args.sources))]
    if 0 < args.limited_concurrency < largest:
        cases.append(Case(largest, args.limited_concurrency, args.latency))
    sequential: dict[int, list[float]] = {}
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="bench-httpx-"))
    try:
        project = bake(workdir, use_httpx=True)
        run(["uv", "sync", "--quiet"], cwd=project)
        python = str(project / ".venv/bin/python")
        env = {**ENV, "DATABASE_URL": f"sqlite:///{workdir / 'bench.sqlite3'}"}
        run([python, "manage.py", "migrate", "--noinput"], cwd=project, env=env)
        upstream_port = free_port()
        upstream_log = workdir / "upstream.log"
        with upstream_log.open("w") as output:
            upstream = subprocess.Popen(
                [python, "-c", UPSTREAM, str(upstream_port)],
                cwd=workdir,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_for_port(upstream_port)
            print(
                f"upstream pid {upstream.pid} on port {upstream_port}; ready after "
                f"{time.monotonic() - started:.0f}s"
            )
            for case in cases:
                bench(case, project, env, upstream_port, workdir, args)
            for n in sorted(set(args.sources)):
                sequential[n] = asyncio.run(
                    time_sequential(upstream_port, n, args.latency, args.sequential_requests)
                )
                median = statistics.median(sequential[n]) * 1000
                print(f"  sequential N={n}: median {median:.0f} ms")
        finally:
            upstream_stop = stop(upstream)
            upstream_lines = upstream_log.read_text().splitlines()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return cases, sequential, upstream_stop, upstream_lines


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, nargs="+", default=[1, 5, 10, 20])
    parser.add_argument("--latency", type=int, default=200, help="ms per upstream call")
    parser.add_argument("--requests", type=int, default=10, help="timed dashboard requests")
    parser.add_argument("--sequential-requests", type=int, default=3, help="baseline rounds")
    parser.add_argument("--limited-concurrency", type=int, default=5, help="0: skip that row")
    return parser


def main() -> None:
    args = parser().parse_args()
    if args.latency * max(args.sources) / 1000 * args.sequential_requests > 120:
        print("note: the sequential baseline alone takes over 2 minutes with these flags")
    started = time.monotonic()
    cases, sequential, upstream_stop, upstream_lines = measure(args)
    report(cases, sequential, args)
    print(f"upstream {upstream_stop}; log lines {len(upstream_lines)}")
    for line in upstream_lines[-5:]:
        print(f"  {line[:300]}")
    print(f"total {time.monotonic() - started:.0f}s")


if __name__ == "__main__":
    main()
