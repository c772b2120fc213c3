"""The benchmarks in one run: every ratio beside its baseline, a docs page and plots.

    uv run --group bench python -m bench [--seconds 5]

Runs, one after another on this machine (each section stops what it started):
- bench.http: GET /healthz from the server's floor, the project's async path,
  Django's own handler and sync Django under gunicorn; one article as JSON,
  async vs sync, at concurrency 1, 10 and 100.
- bench.httpx_fanout: the dashboard over N = 1, 3 and 10 upstreams of
  latency L = 100 ms, against the same calls one after another.
- bench.sse: idle GET /events/ streams on one uvicorn worker, 1,000 more at a
  time up to 10,000 (or the first failure), for each broker: memory per
  stream; then one event after another to 1,000 streams over two processes
  sharing Redis: delivery latency.
- bench.channels: one room over Redis, two uvicorn processes, 100 and then
  1,000 websocket clients: broadcast latency.
bench.tasks runs on its own (`python -m bench.tasks`, about 7 minutes); the
page keeps its latest recorded run (bench/results/tasks.json), or the
section it already has. So does bench.orm (`python -m bench.orm`, about 20
minutes at two rounds), which writes its section of the page and its plot itself.
Prints the tables, writes docs/benchmarks.md (machine, versions, date,
command) and the plots in docs/img/. Needs wrk and redis-server.
"""

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

from bench import channels, http, httpx_fanout, orm, page_section, quantile_ms, sse
from bench import tasks as background_tasks

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
IMAGES = DOCS / "img"
FANOUT_SOURCES = [1, 3, 10]
FANOUT_LATENCY = 100  # ms
ROOM_CLIENTS = [100, 1000]
# Sent 0.2 s apart: 5,000 frames/s to 1,000 clients, which share the cores with the servers.
ROOM_ARGS = ["--case", "redis-x2", "--messages", "50", "--interval", "0.2"]


def machine() -> str:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{cpu}, {os.cpu_count()} cores, Linux {platform.release()}"


def versions(project: Path) -> str:
    script = (
        "import importlib.metadata as m, platform; "
        "print(', '.join([f'Python {platform.python_version()}'] + "
        "[f'{n} {m.version(n)}' for n in "
        "('django', 'uvicorn', 'gunicorn', 'httptools', 'asgiref')]))"
    )
    result = subprocess.run(
        [project / ".venv/bin/python", "-c", script], capture_output=True, text=True, check=True
    )
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split()[:2]
    return f"{result.stdout.strip()}, {' '.join(wrk)}"


def save(figure, axes, title: str, name: str) -> Path:
    """Title, legend and layout, written to docs/img/<name>."""
    axes.set_title(title)
    axes.legend()
    figure.tight_layout()
    path = IMAGES / name
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def fanout_lines(cases, sequential) -> list[str]:
    lines = [
        f"GET /api/dashboard/, N upstreams of L = {FANOUT_LATENCY} ms, uvicorn 1 worker",
        f"{'N':>3}{'fan-out ms':>12}{'/ L':>7}{'sequential ms':>15}{'seq / fan-out':>15}",
    ]
    for case in cases:
        fan_out = statistics.median(case.seconds) * 1000
        baseline = statistics.median(sequential[case.sources]) * 1000
        lines.append(
            f"{case.sources:>3}{fan_out:>12.0f}{fan_out / FANOUT_LATENCY:>7.2f}"
            f"{baseline:>15.0f}{baseline / fan_out:>15.1f}"
        )
    return lines


def plot_fanout(cases, sequential) -> Path:
    widths = [case.sources for case in cases]
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot(widths, [statistics.median(c.seconds) * 1000 for c in cases], "o-", label="fan-out")
    axes.plot(
        widths,
        [statistics.median(sequential[c.sources]) * 1000 for c in cases],
        "s-",
        label="one after another",
    )
    axes.axhline(FANOUT_LATENCY, color="gray", linestyle=":", label="L (the limit)")
    axes.set(xlabel="upstreams (N)", ylabel="ms per dashboard request", xticks=widths)
    title = f"Dashboard latency vs fan-out width (L = {FANOUT_LATENCY} ms)"
    return save(figure, axes, title, "fanout.png")


def plot_async_vs_sync(results: http.Results) -> Path:
    figure, axes = plt.subplots(figsize=(6, 4))
    for kind, label in (("async", "async view, uvicorn"), ("sync", "sync view, gunicorn")):
        axes.plot(
            http.CONCURRENCY,
            [results.article[kind, c].rps for c in http.CONCURRENCY],
            "o-",
            label=label,
        )
    axes.set(xscale="log", xlabel="concurrent connections", ylabel="requests per second")
    axes.set_xticks(http.CONCURRENCY, [str(c) for c in http.CONCURRENCY])
    axes.set_ylim(bottom=0)
    return save(figure, axes, "One article as JSON, one worker each", "async-vs-sync.png")


# Profiles taken with py-spy beside the benchmark (not part of its run): what the
# reading above says about where time goes, and what was done about it.
WHERE_THE_TIME_GOES = [
    "## Where the time goes",
    "",
    "Profiled with `py-spy record` against the benchmark's servers, outside the timed run:",
    "",
    "- **One article, async, c=10.** Three quarters of the worker's busy CPU is on the event "
    "loop's thread (uvicorn's protocol, Django's async handler and middleware, building the "
    "response), a quarter on the request threads. Of all of it, about 22% is opening and "
    "closing the SQLite connection each request (`CONN_MAX_AGE = 0`, as under gunicorn), 11% "
    "the query itself, 5% the schema. The loop and the request threads take turns holding "
    "the GIL; gunicorn's sync worker runs the same work on one thread with no hand-off.",
    "- **`/healthz` under Django's own handler** starts a thread per request to run "
    "Django's own `request_started`/`request_finished` receivers, and another to join it. "
    "`core/asgi.py` runs those receivers on the loop when the request used no thread, and "
    "keeps idle request threads for the requests that do ([middleware.md](middleware.md)).",
    "- **A broadcast to 1,000 websockets** first measured a median of 1.76 s and a p99 of "
    "3.2 s, with both workers at 160% CPU: Channels' consumer runs `close_old_connections` "
    "through `sync_to_async` before every message, about half the workers' CPU, for a "
    "consumer that uses no database. `RoomConsumer` now dispatches without that hop "
    "([channels.md](channels.md#capacity)): median 75 ms, p99 206 ms, workers at about one "
    "core. The same run logged ~680 `MaxConnectionsError`s when the clients left at once; "
    "the channel layer's pool now waits for a free connection.",
]


def streams_lines(ramps: list[sse.Result], delivery: sse.Delivery, args) -> list[str]:
    lines = [
        f"Idle GET /events/ streams on one uvicorn worker, +{args.step} a step, "
        f"bounded at {args.max_streams}",
        f"{'broker':<8}{'held':>7}{'stopped by':>22}{'MiB at 0':>10}{'MiB at max':>12}"
        f"{'KiB/stream':>12}{'threads':>9}{'one event to all, ms':>22}",
    ]
    for ramp in ramps:
        per_stream = (ramp.peak.rss - ramp.zero.rss) / max(ramp.opened, 1)
        slowest = f"{max(ramp.latencies) * 1000:.0f}" if ramp.latencies else "-"
        lines.append(
            f"{ramp.broker:<8}{ramp.held:>7}{ramp.stop:>22}{ramp.zero.rss / 1024:>10.1f}"
            f"{ramp.peak.rss / 1024:>12.1f}{per_stream:>12.1f}{ramp.peak.threads:>9}"
            f"{slowest:>22}"
        )
    return [*lines, "", *sse.delivery_report(delivery, args)]


def rooms_lines(rooms: list[channels.Result], args) -> list[str]:
    lines = [
        f"One room over Redis, 2 uvicorn processes; {args.messages} messages "
        f"{args.interval:g} s apart from one client",
        f"{'clients':>8}{'connected':>11}{'received / expected':>22}{'lost':>6}"
        f"{'median ms':>11}{'p99 ms':>9}{'all had it, p99 ms':>20}",
    ]
    for room in rooms:
        lines.append(
            f"{sum(room.clients):>8}{'+'.join(map(str, room.clients)):>11}"
            f"{f'{room.received} / {room.expected}':>22}{room.expected - room.received:>6}"
            f"{quantile_ms(room.latencies, 0.5):>11}{quantile_ms(room.latencies, 0.99):>9}"
            f"{quantile_ms(room.last, 0.99):>20}"
        )
    return lines


def plot_streams(ramps: list[sse.Result]) -> Path:
    figure, axes = plt.subplots(figsize=(6, 4))
    for ramp in ramps:
        axes.plot(
            [streams for streams, _ in ramp.steps],
            [sample.rss / 1024 for _, sample in ramp.steps],
            "o-",
            label=f"broker={ramp.broker}",
        )
    axes.set(xlabel="idle SSE streams open", ylabel="worker RSS (MiB)")
    axes.set_ylim(bottom=0)
    return save(figure, axes, "Memory of one uvicorn worker vs open streams", "streams-memory.png")


def reading_of(
    results: http.Results,
    cases,
    sequential,
    ramps: list[sse.Result],
    delivery: sse.Delivery,
    rooms: list[channels.Result],
) -> list[str]:
    """What the numbers mean for a choice between async and sync views."""
    ours = results.healthz["async, template"].rps
    sync = results.healthz["sync gunicorn, stock mw"].rps
    djangos = results.healthz["async, Django's handler"].rps
    stock = results.healthz["async, Django's handler, stock mw"].rps
    floor = results.healthz["raw ASGI (floor)"].rps
    article = [
        results.article["async", c].rps / results.article["sync", c].rps for c in http.CONCURRENCY
    ]
    widest = max(cases, key=lambda case: case.sources)
    fan_out = statistics.median(widest.seconds) * 1000
    one_by_one = statistics.median(sequential[widest.sources]) * 1000
    held = ", ".join(
        f"{ramp.held:,} with broker={ramp.broker} "
        f"({(ramp.peak.rss - ramp.zero.rss) / max(ramp.opened, 1):.0f} KiB each)"
        for ramp in ramps
    )
    room_latency = "; ".join(
        f"{sum(room.clients):,} clients: median {quantile_ms(room.latencies, 0.5)} ms, "
        f"p99 {quantile_ms(room.latencies, 0.99)} ms"
        for room in rooms
    )
    return [
        "## Reading the results",
        "",
        f"- **Waiting on other services is where async wins.** The dashboard called "
        f"{widest.sources} upstreams of {FANOUT_LATENCY} ms in {fan_out:.0f} ms, against "
        f"{one_by_one:.0f} ms one after another ({one_by_one / fan_out:.1f}x), on one worker.",
        f"- **Holding many idle connections is the other.** One worker held {held}, with a "
        f"handful of threads in all. A sync worker holds one connection per thread or process. "
        f"An event reached {sum(delivery.clients):,} streams spread over two processes in "
        f"{quantile_ms(delivery.latencies, 0.5)} ms (median; p99 "
        f"{quantile_ms(delivery.latencies, 0.99)} ms) through Redis. Websocket broadcast to one "
        f"room: {room_latency}.",
        f"- **Requests that do little cost little, once Django's handler stops starting "
        f"threads.** `/healthz` on the project's async path: {ours:.0f} req/s, "
        f"{ours / sync:.1f}x sync Django under gunicorn ({sync:.0f}) and {ours / djangos:.1f}x "
        f"Django's own ASGI handler ({djangos:.0f}); Django's handler with Django's stock "
        f"middleware, what a new project gets, does {stock:.0f}. The server alone does "
        f"{floor:.0f}, so Django is {floor / ours:.0f}x from the floor.",
        "- **Where async loses: plain ORM reads.** One article as JSON: async / sync = "
        + ", ".join(f"{r:.2f}x at c={c}" for r, c in zip(article, http.CONCURRENCY, strict=True))
        + ". Django has no async database driver: the query still runs on a thread, and the "
        "event loop pays for the async machinery around it. Views that mostly query the "
        "database gain nothing from being async, and under uvicorn a sync view pays the same "
        "thread hop. These rows are bench.http's own servers; [The async database "
        "path](#the-async-database-path) measures the project's request threads against "
        "gunicorn, by CPU per request, on SQLite, PostgreSQL and PostgreSQL a hop away "
        "([the async guide](async-guide.md#when-async-helps-and-when-it-does-not)).",
        "",
        "Absolute numbers move between runs on this virtual machine (the floor has measured "
        "19,000 to 37,000 req/s on different runs); read the ratios, which are measured side by "
        "side within one run, each server once per round.",
        "",
        *WHERE_THE_TIME_GOES,
    ]


def write_page(
    sections: list[tuple[str, list[str]]], about: list[str], reading: list[str], images: list[Path]
):
    page = [
        "# Benchmarks",
        "",
        "Written by `uv run --group bench python -m bench`; every number below comes",
        "from the one run described here, but [Background tasks](#background-tasks)",
        "and [The async database path](#the-async-database-path), which",
        "`python -m bench.tasks` and `python -m bench.orm` measure in runs of their own.",
        "",
        *about,
        "",
        *reading,
        "",
    ]
    for title, lines in sections:
        page += [f"## {title}", "", "```text", *lines, "```", ""]
    page += background_tasks.kept_section()
    page += page_section(orm.HEADING)
    page += [f"![{image.stem}](img/{image.name})" for image in images]
    (DOCS / "benchmarks.md").write_text("\n".join(page) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5, help="wrk run per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="bench.http: every server per round")
    args = parser.parse_args()
    for tool, package in (("wrk", "wrk"), ("redis-server", "redis-server")):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed: apt-get install {package}")
    IMAGES.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    print("bench.http")
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        project, article = http.prepare(workdir)
        installed = versions(project)
        results = http.measure(project, article, args.seconds, args.rounds)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print("bench.httpx_fanout")
    fanout_args = httpx_fanout.parser().parse_args(
        [
            "--sources",
            *map(str, FANOUT_SOURCES),
            "--latency",
            str(FANOUT_LATENCY),
            "--limited-concurrency",
            "0",
        ]
    )
    cases, sequential, _, _ = httpx_fanout.measure(fanout_args)

    print("bench.sse")
    sse_args = sse.parser().parse_args([])
    ramps, delivery = sse.measure_all(sse_args)

    print("bench.channels")
    room_args = [
        channels.parser().parse_args([*ROOM_ARGS, "--clients", str(n)]) for n in ROOM_CLIENTS
    ]
    rooms = [room for one in room_args for room in channels.measure_all(one)]

    sections = [
        ("Requests per second", http.report(results, args.seconds, args.rounds)),
        ("Fan-out", fanout_lines(cases, sequential)),
        ("Streams", streams_lines(ramps, delivery, sse_args)),
        ("Websockets", rooms_lines(rooms, room_args[0])),
    ]
    for title, lines in sections:
        print(f"\n{title}\n" + "\n".join(lines))
    images = [plot_async_vs_sync(results), plot_fanout(cases, sequential), plot_streams(ramps)]
    about = [
        f"- Date: {datetime.date.today().isoformat()}",
        f"- Machine: {machine()}; the load generators run on the same cores.",
        f"- Versions: {installed}",
        f"- Command: `uv run --group bench python -m bench --seconds {args.seconds:g} "
        f"--rounds {args.rounds}`"
        f" ({time.monotonic() - started:.0f} s)",
    ]
    reading = reading_of(results, cases, sequential, ramps, delivery, rooms)
    write_page(sections, about, reading, images)
    print(f"\nwrote {DOCS / 'benchmarks.md'} and {', '.join(str(i) for i in images)}")


if __name__ == "__main__":
    main()
