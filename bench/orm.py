"""The async database path against sync Django: server CPU per request and requests per second.

One article with its author and tags as JSON (two queries), from a view
written async (`aget`) and the same view written sync, served several ways,
each loaded by wrk at concurrency 1, 10 and 100, on:

- SQLite (a file), PostgreSQL on loopback, and PostgreSQL one network hop
  away: a delaying proxy (bench/latency.py, 0.5 ms each way) between the
  server and the database;
- one worker each: gunicorn's sync worker (the sync view); uvicorn with the
  project's handler, the sync and the async view, each with a thread per
  request (REQUEST_THREADS=0, the default) and with the request threads
  shared (REQUEST_THREADS=8, core.asgi.SyncThreads);
- N workers, on the network-hop database: uvicorn --workers 2 against
  gunicorn with 2 x cores + 1 sync workers and with its threaded worker.

Server CPU per request is the server's processes' user + system time read
from /proc before and after each load, divided by the requests wrk counted:
steadier than requests per second on a shared machine. Each server is
measured once per round, the rounds one after another; figures are medians.
On PostgreSQL, with py-spy (the bench group installs it), the async view
on shared threads and gunicorn are profiled at c=1 and c=10: each one's
CPU per request split by layer (bench/gil.py), side by side. A last table
loads the article at c=10 while one slow query at a time (200 ms) runs
beside it: the article's p99 shows whether a slow request holds others up.
docs/img/orm.png plots the ratios to gunicorn at one worker.

    uv run --group bench python -m bench.orm [--seconds 5] [--rounds 2]
        [--databases sqlite,postgresql,hop] [--py-spy PATH]
"""

import argparse
import contextlib
import datetime
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from servers import free_port, postgres_server, wait_for_port

from bench import ENV, gil, replace_section, serve, stop
from bench.http import Load, median_load, prepare, wrk

CONCURRENCY = (1, 10, 100)
DATABASES = "sqlite,postgresql,hop"
HEADING = "## The async database path"
SLOW_QUERY_SECONDS = 0.2
HOP_DELAY = 0.0005  # seconds, each way: 1 ms added per round trip
PLOT = Path(__file__).resolve().parent.parent / "docs/img/orm.png"
TITLES = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "hop": "PostgreSQL 1 ms away"}
# The targets, as ratios to gunicorn's sync worker: CPU per request at each of
# CONCURRENCY; requests per second at c=10 and c=100 (more than gunicorn's a hop away).
CPU_GOAL = (1.1, 1.15, 1.15)
RPS_GOAL = {"sqlite": 0.9, "postgresql": 0.9, "hop": 1.0}


@dataclass
class Server:
    name: str
    command: str  # "uvicorn" or "gunicorn"
    view: str  # "sync" or "async"
    env: dict[str, str] = field(default_factory=dict)
    workers: int = 1
    threads: int = 1

    @property
    def app(self) -> str:
        return "config.asgi:application" if self.command == "uvicorn" else "config.wsgi:application"

    @property
    def settings(self) -> str:
        # gunicorn: Django's own middleware classes (the async-only static one out).
        return "bench_settings" if self.command == "uvicorn" else "bench_settings_stock"


GUNICORN_SYNC = Server("sync view, gunicorn sync worker", "gunicorn", "sync")
ONE_WORKER = [
    GUNICORN_SYNC,
    Server("sync view, uvicorn, a thread per request", "uvicorn", "sync", {"REQUEST_THREADS": "0"}),
    Server("sync view, uvicorn, shared threads", "uvicorn", "sync", {"REQUEST_THREADS": "8"}),
    Server(
        "async view, uvicorn, a thread per request", "uvicorn", "async", {"REQUEST_THREADS": "0"}
    ),
    Server("async view, uvicorn, shared threads", "uvicorn", "async", {"REQUEST_THREADS": "8"}),
]
PROFILED = [GUNICORN_SYNC, ONE_WORKER[4]]  # the async view on shared threads against sync
CORES = os.cpu_count() or 1
N_WORKERS = [
    Server(
        "async view, uvicorn --workers 2, a thread per request",
        "uvicorn",
        "async",
        {"REQUEST_THREADS": "0"},
        workers=2,
    ),
    Server(
        "async view, uvicorn --workers 2, shared threads",
        "uvicorn",
        "async",
        {"REQUEST_THREADS": "8"},
        workers=2,
    ),
    Server(
        f"sync view, gunicorn {2 * CORES + 1} sync workers",
        "gunicorn",
        "sync",
        workers=2 * CORES + 1,
    ),
    Server("sync view, gunicorn 2 gthread workers x 4", "gunicorn", "sync", workers=2, threads=4),
]


@contextlib.contextmanager
def served(project: Path, server: Server, database_env: dict[str, str]):
    env = {**ENV, **database_env, **server.env, "DJANGO_SETTINGS_MODULE": server.settings}
    process, port = serve(
        project, env, Path(os.devnull), app=server.app, server=server.command,
        workers=server.workers, threads=server.threads,
    )  # fmt: skip
    try:
        wait_for_port(port)
        # The port is bound before the app has loaded: wait for a first answer.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=60) as answer:
            answer.read()
        yield port, process.pid
    finally:
        stop(process)
        time.sleep(0.3)


@contextlib.contextmanager
def delaying_proxy(target_port: int):
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.latency",
            str(port),
            str(target_port),
            f"--delay={HOP_DELAY}",
        ],
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        wait_for_port(port)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def worker_pid(server: Server, pid: int) -> int:
    """The process that serves requests: uvicorn's (one worker), or gunicorn's worker."""
    if server.command == "uvicorn":
        return pid
    return int(Path(f"/proc/{pid}/task/{pid}/children").read_text().split()[0])


def measure_where(project, article, database_env, servers, concurrency, seconds, py_spy):
    """Each server under load while py-spy samples it: a gil.Profile per (server name,
    concurrency). py-spy slows a server down: its CPU is taken from the unprofiled loads."""
    profiles = {}
    for server in servers:
        with served(project, server, database_env) as (port, pid):
            path = f"/bench/{server.view}/{article}/"
            wrk(port, path, 10, 1, pid)
            for connections in concurrency:
                with gil.sampling(py_spy, worker_pid(server, pid), seconds + 1) as profile:
                    wrk(port, path, connections, seconds)
                profiles[server.name, connections] = profile
                print(f"  profiled {server.name:<42} c={connections}")
    return profiles


def where_table(database: str, loads: dict, profiles: dict, servers, concurrency) -> list[str]:
    """CPU per request (`loads`) by layer (`profiles`), two servers side by side."""
    names = [server.name for server in servers]
    lines = [
        f"\n{database}: where each request's CPU goes, us per request (the table's CPU; user "
        "time split by the shares of py-spy's GIL samples)",
        f"{'':<52}" + "".join(f"{'c=' + str(c):>24}" for c in concurrency),
        f"{'':<52}" + f"{'gunicorn':>10}{'async':>8}{'diff':>6}" * len(concurrency),
    ]

    def row(label, figure):
        cells = ""
        for c in concurrency:
            base, other = (figure(loads[name, c], profiles[name, c]) for name in names)
            cells += f"{base:>10.0f}{other:>8.0f}{other - base:>+6.0f}"
        lines.append(f"{label:<52}{cells}")

    def user_part(samples):
        return lambda load, profile: load.user_us * profile.share(samples(profile))

    row("all CPU", lambda load, profile: load.cpu_us)
    row("system (the kernel: sockets, thread wake-ups)", lambda load, profile: load.system_us)
    row("user", lambda load, profile: load.user_us)
    row("  on the main thread (uvicorn's event loop)", user_part(lambda p: p.by_thread[gil.MAIN]))
    row(
        "  on other threads (uvicorn's request threads)",
        user_part(lambda p: p.by_thread[gil.OTHERS]),
    )
    for layer in [name for name, _ in gil.LAYERS] + [gil.NO_FRAME, gil.OTHER]:
        row(f"  {layer}", user_part(lambda p, layer=layer: p.by_layer[layer]))
    return lines


def slow_requests(port: int, path: str, stop_event: threading.Event) -> None:
    """One slow request at a time until told to stop."""
    while not stop_event.is_set():
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as answer:
            answer.read()


def measure_database(project, article, database_env, servers, concurrency, seconds, rounds):
    loads: dict[tuple[str, int], list[Load]] = {}
    for round_ in range(1, rounds + 1):
        for server in servers:
            with served(project, server, database_env) as (port, pid):
                path = f"/bench/{server.view}/{article}/"
                wrk(port, path, 10, 1, pid)  # warm up: imports, connections
                for connections in concurrency:
                    load = wrk(port, path, connections, seconds, pid)
                    loads.setdefault((server.name, connections), []).append(load)
                    print(
                        f"  round {round_} {server.name:<42} c={connections:<4}"
                        f"{load.rps:>8.0f} req/s {load.cpu_us:>7.0f} us CPU/req"
                    )
    return {key: median_load(value) for key, value in loads.items()}


def measure_slow(project, article, database_env, servers, seconds):
    """The article at c=10 with one slow query at a time beside it: its p99."""
    results = {}
    for server in servers:
        with served(project, server, database_env) as (port, pid):
            path = f"/bench/{server.view}/{article}/"
            wrk(port, path, 10, 1, pid)
            stop_event = threading.Event()
            slow = threading.Thread(
                target=slow_requests, args=(port, f"/bench/{server.view}-slow/", stop_event)
            )
            slow.start()
            try:
                results[server.name] = wrk(port, path, 10, seconds, pid)
            finally:
                stop_event.set()
                slow.join()
            print(f"  slow beside {server.name:<42} p99 {results[server.name].p99_ms:.1f} ms")
    return results


def table(title: str, results: dict, servers, concurrency, base=GUNICORN_SYNC) -> list[str]:
    """One row per server: req/s, CPU per request (and its ratio to `base`'s), p99."""
    lines = [title, f"{'server':<52}" + "".join(f"{'c=' + str(c):>30}" for c in concurrency)]
    lines.append(f"{'':<52}" + f"{'req/s  us/req  xCPU  p99 ms':>30}" * len(concurrency))
    for server in servers:
        row = f"{server.name:<52}"
        for c in concurrency:
            load = results[server.name, c]
            ratio = load.cpu_us / results[base.name, c].cpu_us
            row += f"{load.rps:>12.0f}{load.cpu_us:>8.0f}{ratio:>6.2f}{load.p99_ms:>7.1f}"
        lines.append(row)
    return lines


def plot(results: dict[str, dict]) -> None:
    """`results` (database -> (server name, concurrency) -> Load) drawn to PLOT: CPU per
    request and requests per second of each uvicorn row as ratios to gunicorn's."""
    import matplotlib  # the bench group's, not needed to import this module

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(
        2, len(results), figsize=(4 * len(results), 7), sharex=True, sharey="row", squeeze=False
    )
    for column, (database, loads) in enumerate(results.items()):
        cpu, rps = axes[0][column], axes[1][column]
        for server in ONE_WORKER[1:]:
            style = ("o" if server.view == "async" else "s") + (
                "-" if server.env.get("REQUEST_THREADS") != "0" else "--"
            )
            for panel, figure_of in ((cpu, "cpu_us"), (rps, "rps")):
                base = [getattr(loads[GUNICORN_SYNC.name, c], figure_of) for c in CONCURRENCY]
                ours = [getattr(loads[server.name, c], figure_of) for c in CONCURRENCY]
                ratios = [mine / theirs for mine, theirs in zip(ours, base, strict=True)]
                panel.plot(CONCURRENCY, ratios, style, label=server.name.replace(", uvicorn", ""))
        cpu.plot(CONCURRENCY, CPU_GOAL, "g:", label="goal")
        rps.plot(CONCURRENCY[1:], [RPS_GOAL[database]] * 2, "g:", label="goal")
        cpu.set_title(TITLES[database])
        rps.set(xscale="log", xlabel="concurrent connections")
        rps.set_xticks(CONCURRENCY, [str(c) for c in CONCURRENCY])
    for row in axes:  # shared by the row, once every line is drawn
        row[0].set_ylim(bottom=0)
    axes[0][0].set_ylabel("CPU per request, x gunicorn's\n(lower is better)")
    axes[1][0].set_ylabel("requests per second, x gunicorn's\n(higher is better)")
    axes[0][0].legend(fontsize="small")
    figure.suptitle("The async ORM read against gunicorn's sync worker, one worker each")
    figure.tight_layout()
    figure.savefig(PLOT, dpi=110)
    plt.close(figure)


def plot_link() -> str:
    """PLOT in the page: linked, to open it full size, and so not a line starting "![",
    which would end the section (bench.section_lines: the page's own plots close it)."""
    return f"[![orm](img/{PLOT.name})](img/{PLOT.name})"


def slow_table(database: str, results: dict[str, Load]) -> list[str]:
    seconds = SLOW_QUERY_SECONDS * 1000
    lines = [f"\n{database}: the article at c=10, one {seconds:.0f} ms query at a time beside it"]
    for name, load in results.items():
        lines.append(
            f"{name:<52}{load.rps:>8.0f} req/s  p50 {load.p50_ms:>6.1f} ms"
            f"  p99 {load.p99_ms:>6.1f} ms"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--databases", default=DATABASES)
    parser.add_argument(
        "--py-spy",
        default=shutil.which("py-spy"),
        help="where py-spy is; without it, no profile (default: on PATH)",
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk")
    databases = args.databases.split(",")
    workdir = Path(tempfile.mkdtemp(prefix="bench-orm-"))
    lines = []
    plotted = {}
    try:
        with contextlib.ExitStack() as stack:
            for database in databases:
                env = {}
                if database != "sqlite":
                    postgres = stack.enter_context(postgres_server())
                    port = postgres.port
                    if database == "hop":
                        port = stack.enter_context(delaying_proxy(postgres.port))
                    env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:{port}/postgres"
                project, article = prepare(workdir / database, database, env)
                print(f"{database}: one worker")
                one = measure_database(
                    project, article, env, ONE_WORKER, CONCURRENCY, args.seconds, args.rounds
                )
                lines += table(f"\n{database}: one worker each", one, ONE_WORKER, CONCURRENCY)
                plotted[database] = one
                if database == "hop":
                    many = measure_database(
                        project, article, env, N_WORKERS, (10, 100), args.seconds, args.rounds
                    )
                    lines += table(
                        f"\n{database}: N workers", many, N_WORKERS, (10, 100), base=N_WORKERS[2]
                    )
                if database == "postgresql" and args.py_spy:
                    try:
                        profiles = measure_where(
                            project, article, env, PROFILED, (1, 10), args.seconds, args.py_spy
                        )
                    except RuntimeError as error:  # not allowed to trace, say
                        lines.append(f"\n{database}: no profile: {error}")
                    else:
                        lines += where_table(database, one, profiles, PROFILED, (1, 10))
                slow = measure_slow(project, article, env, ONE_WORKER, args.seconds)
                lines += slow_table(database, slow)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("\n".join(lines))
    plot(plotted)
    command = "uv run --group bench python -m bench.orm"
    command += f" --seconds {args.seconds:g} --rounds {args.rounds}"
    if args.databases != DATABASES:
        command += f" --databases {args.databases}"
    replace_section(
        HEADING,
        [
            HEADING,
            "",
            f"Written by `{command}` on {datetime.date.today()} ({CORES} cores; wrk, the "
            "delaying proxy and PostgreSQL on the same cores). Server CPU per request (us/req) "
            "is read from /proc; xCPU is its ratio to gunicorn's sync worker (one worker) or to "
            f'its {2 * CORES + 1} sync workers (N workers). "A thread per request" is '
            '`REQUEST_THREADS=0`, the default; "shared threads" is `REQUEST_THREADS=8`. See '
            "[the async guide](async-guide.md#request-threads).",
            "",
            "The layer table splits user time by the shares of py-spy's samples of the thread "
            "holding the GIL, taken in one profiled pass: approximate (a thread can hold the "
            "GIL in a system call), and its rows move by a few hundred us between runs. In the "
            "plot, dotted lines mark the targets: CPU per request at most 1.1x gunicorn's at 1 "
            "client and 1.15x at 10 and 100; at 10 and 100, at least 0.9x its requests per "
            "second, and more than gunicorn's with the database a hop away.",
            "",
            "```text",
            *"\n".join(lines).lstrip("\n").splitlines(),
            "```",
            "",
            plot_link(),
            "",
        ],
    )


if __name__ == "__main__":
    main()
