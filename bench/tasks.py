"""Background tasks: the worker's throughput, enqueue latency and concurrency, per database.

Bakes a project with `use_tasks` (SQLite, then PostgreSQL on a throwaway
server from tests/servers.py), writes a module of benchmark tasks into it
(`tasks/bench_tasks.py`: `noop`, and `nap`, which awaits asyncio.sleep) and a
driver script, migrates, and measures with `manage.py worker` processes
started beside it, as the baked README runs them:

- throughput: N `noop` tasks committed at once, through one worker and
  through two; tasks per second from the first start to the last finish
  (the rows' own started_at and finished_at), worker CPU per task from
  /proc/<pid>/stat, and a check that every task ran exactly once;
- enqueue latency: one `noop` at a time, the worker idle-polling between
  them (TASKS_WORKER_INTERVAL); from enqueued_at to started_at;
- concurrency: 50 `nap` tasks of 1 s through our worker (default
  concurrency), through django-tasks-db's own `manage.py db_worker` (one at a
  time, polling at the same interval), and the same 50 awaited one after
  another in one process (once, on SQLite): wall time from the commit of the
  50 to the last finish, the ratio, and worker CPU per task.

Appends the run to bench/results/tasks.json and writes its tables into the
"Background tasks" section of docs/benchmarks.md (`python -m bench` keeps
that section when it rewrites the page). Everything binds to 127.0.0.1 and
is stopped at the end. About 7 minutes on 2 cores; needs PostgreSQL's
server binaries (`apt-get install postgresql`) for the PostgreSQL half.

    uv run --group bench python -m bench.tasks [--tasks 3000] [--rounds 3]
        [--latency-samples 40] [--databases sqlite postgresql]
    uv run --group bench python -m bench.tasks --page-only   # the section, from the last run
"""

import argparse
import contextlib
import datetime
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bakery import bake, run
from servers import postgres_server

from bench import ENV, PAGE, cpu_times, page_section, replace_section, stop

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "tasks.json"
HEADING = "## Background tasks"
NAPS = 50  # the figure: 50 I/O-bound tasks of 1 s
NAP_SECONDS = 1.0
INTERVAL = 0.5  # TASKS_WORKER_INTERVAL's default; db_worker polls at the same
RUN_TIMEOUT = 120.0  # no measurement waits longer than this for its tasks

# Written into the bake by the benchmark, never part of the template.
BENCH_TASKS = '''
"""Tasks for bench/tasks.py: one that does nothing, one that waits as I/O does."""

import asyncio

from django.tasks import task


@task
async def noop() -> None:
    """Nothing: what the queue itself costs."""


@task
async def nap(seconds: float) -> None:
    """Wait `seconds` on the event loop, as a task waiting on the network does."""
    await asyncio.sleep(seconds)
'''

DRIVER = '''
"""Enqueues and waits for bench/tasks.py; prints one JSON object."""

import asyncio
import json
import os
import random
import sys
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from django.db import transaction  # noqa: E402
from django.db.models import Max, Min  # noqa: E402
from django_tasks_db.models import DBTaskResult  # noqa: E402

from tasks.bench_tasks import nap, noop  # noqa: E402


def wait_finished(count, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if DBTaskResult.objects.finished().count() >= count:
            return True
        time.sleep(0.05)
    return False


def batch(name, count, seconds, timeout):
    """`count` tasks committed at once; their timestamps once all have finished."""
    DBTaskResult.objects.all().delete()
    with transaction.atomic():
        for _ in range(count):
            if name == "nap":
                nap.enqueue(seconds)
            else:
                noop.enqueue()
    complete = wait_finished(count, timeout)
    rows = DBTaskResult.objects.all()
    span = rows.aggregate(
        committed=Max("enqueued_at"), first=Min("started_at"), last=Max("finished_at")
    )
    attempts = [len(ids) for ids in rows.values_list("worker_ids", flat=True)]
    workers = {ids[-1] for ids in rows.values_list("worker_ids", flat=True) if ids}
    return {
        "complete": complete,
        "successful": rows.filter(status="SUCCESSFUL").count(),
        "ran_twice": sum(n > 1 for n in attempts),
        "workers": len(workers),
        "wall": (span["last"] - span["committed"]).total_seconds(),
        "busy": (span["last"] - span["first"]).total_seconds(),
    }


def latency(samples, interval):
    """One task at a time, enqueued at a random point of the worker's poll; seconds to start."""
    DBTaskResult.objects.all().delete()
    waits = []
    for _ in range(samples):
        time.sleep(random.uniform(0, interval))  # noqa: S311 (spreads the phase)
        result = noop.enqueue()
        if not wait_finished(len(waits) + 1, 10):
            break
        row = DBTaskResult.objects.get(id=result.id)
        waits.append((row.started_at - row.enqueued_at).total_seconds())
    return {"waits": waits}


async def serial(count, seconds):
    started = time.monotonic()
    for _ in range(count):
        await nap.func(seconds)
    return {"wall": time.monotonic() - started}


command, *args = sys.argv[1:]
if command == "batch":
    answer = batch(args[0], int(args[1]), float(args[2]), float(args[3]))
elif command == "latency":
    answer = latency(int(args[0]), float(args[1]))
else:
    answer = asyncio.run(serial(int(args[0]), float(args[1])))
print(json.dumps(answer))
'''


@contextlib.contextmanager
def workers(project: Path, env: dict, command: list[str], count: int) -> Iterator[list[int]]:
    """`count` worker processes running `manage.py <command>`, idle and polling; their pids."""
    python = str(project / ".venv/bin/python")
    processes = []
    try:
        for number in range(count):
            log = (project / f"worker-{number}.log").open("a")
            processes.append(
                subprocess.Popen(
                    [python, "manage.py", *command],
                    cwd=project,
                    env={**os.environ, **env},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            log.close()
        time.sleep(4)  # Django imported, first poll made: idle
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(f"{' '.join(command)} exited {process.returncode} at start")
        yield [process.pid for process in processes]
    finally:
        for process in processes:
            stop(process)


def drive(project: Path, env: dict, *args: object) -> dict:
    python = str(project / ".venv/bin/python")
    result = run(
        [python, "bench_driver.py", *map(str, args)], cwd=project, env=env, timeout=RUN_TIMEOUT + 60
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def through(project: Path, env: dict, command: list[str], count: int, *batch: object) -> dict:
    """Run one batch through `count` workers; the batch's figures and the workers' CPU seconds."""
    with workers(project, env, command, count) as pids:
        before = sum(sum(cpu_times(pid)) for pid in pids)
        figures = drive(project, env, "batch", *batch, RUN_TIMEOUT)
        figures["cpu"] = sum(sum(cpu_times(pid)) for pid in pids) - before
    return figures


def prepare(workdir: Path, database: str, env: dict) -> Path:
    project = bake(
        workdir / database,
        database=database,
        use_tasks=True,
        use_sse=False,
        use_channels=False,
        use_httpx=False,
        use_async_views=False,
    )
    run(["uv", "sync", "--quiet"], cwd=project)
    (project / "tasks" / "bench_tasks.py").write_text(BENCH_TASKS.lstrip())
    (project / "bench_driver.py").write_text(DRIVER.lstrip())
    run([str(project / ".venv/bin/python"), "manage.py", "migrate", "--noinput"], project, env)
    return project


def measure_database(workdir: Path, database: str, env: dict, args) -> tuple[dict, Path]:
    """Every measurement on a bake with `database`; the figures and the project."""
    project = prepare(workdir, database, env)
    ours = ["worker"]
    theirs = ["db_worker", "--interval", str(INTERVAL), "--no-startup-delay", "--no-reload"]
    measured: dict = {"database": database}
    print(f"  {database}: throughput, {args.tasks} tasks, {args.rounds} rounds", flush=True)
    rounds: dict[str, list[dict]] = {"1": [], "2": []}
    for _ in range(args.rounds):  # one worker, then two, per round: drift shifts both alike
        for count in rounds:
            rounds[count].append(through(project, env, ours, int(count), "noop", args.tasks, 0))
    measured["throughput"] = rounds
    print(f"  {database}: enqueue latency, {args.latency_samples} samples", flush=True)
    with workers(project, env, ours, 1):
        measured["latency"] = drive(project, env, "latency", args.latency_samples, INTERVAL)
    print(f"  {database}: {NAPS} tasks of {NAP_SECONDS:g} s", flush=True)
    measured["naps"] = {
        name: through(project, env, command, 1, "nap", NAPS, NAP_SECONDS)
        for name, command in (("worker", ours), ("db_worker", theirs))
    }
    if database == "sqlite":
        measured["serial"] = drive(project, env, "serial", NAPS, NAP_SECONDS)
    return measured, project


def versions(project_python: Path) -> str:
    script = (
        "import importlib.metadata as m, platform; "
        "print(', '.join([f'Python {platform.python_version()}'] + "
        "[f'{n} {m.version(n)}' for n in ('django', 'django-tasks-db')]))"
    )
    return run([str(project_python), "-c", script], cwd=ROOT).stdout.strip()


def measure(args) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="bench-tasks-"))
    env = {
        **ENV,
        "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
        "TASKS_WORKER_INTERVAL": str(INTERVAL),
    }
    started = time.monotonic()
    runs = []
    try:
        for database in args.databases:
            if database == "postgresql":
                with postgres_server() as server:
                    pg_env = {**env, "DATABASE_URL": server.url("postgres")}
                    measured, project = measure_database(workdir, database, pg_env, args)
            else:
                measured, project = measure_database(workdir, database, env, args)
            runs.append(measured)
        installed = versions(project / ".venv/bin/python")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "cores": os.cpu_count(),
        "load_average_after": os.getloadavg(),
        "versions": installed,
        "seconds": round(time.monotonic() - started),
        "tasks": args.tasks,
        "rounds": args.rounds,
        "interval": INTERVAL,
        "runs": runs,
    }


def per_task_ms(figures: dict, count: int) -> str:
    return f"{figures['cpu'] / count * 1000:.2f}"


def rate(rounds: list[dict], tasks: int) -> float:
    """Median tasks per second over the rounds."""
    return statistics.median(tasks / figures["busy"] for figures in rounds)


def report(result: dict) -> list[str]:
    """The tables of one recorded run."""
    tasks = result["tasks"]
    lines = [
        f"{tasks} trivial async tasks committed at once, `manage.py worker` (50 at once each); "
        "tasks/s from the first start to the last finish",
        f"{'database':<12}{'workers':>8}{'tasks/s':>9}{'ran':>7}{'twice':>7}"
        f"{'CPU ms/task':>13}  each round, tasks/s",
    ]
    for measured in result["runs"]:
        for count, rounds in measured["throughput"].items():
            cpu = statistics.median(figures["cpu"] for figures in rounds)
            each = ", ".join(f"{tasks / figures['busy']:.0f}" for figures in rounds)
            lines.append(
                f"{measured['database']:<12}{count:>8}{rate(rounds, tasks):>9.0f}"
                f"{sum(f['successful'] for f in rounds):>7}"
                f"{sum(f['ran_twice'] for f in rounds):>7}"
                f"{cpu / tasks * 1000:>13.2f}  {each}"
            )
    lines.append("(ran, twice: over all rounds; the rest: the median round)")
    lines += [
        "",
        f"Enqueue to start, one task at a time, the worker polling every {result['interval']:g} s "
        "when idle",
        f"{'database':<12}{'samples':>8}{'median ms':>11}{'p95 ms':>9}{'max ms':>9}",
    ]
    for measured in result["runs"]:
        waits = sorted(measured["latency"]["waits"])
        p95 = waits[min(len(waits) - 1, int(0.95 * len(waits)))]
        lines.append(
            f"{measured['database']:<12}{len(waits):>8}{statistics.median(waits) * 1000:>11.0f}"
            f"{p95 * 1000:>9.0f}{waits[-1] * 1000:>9.0f}"
        )
    serial = next(m["serial"]["wall"] for m in result["runs"] if "serial" in m)
    lines += [
        "",
        f"{NAPS} async tasks that each await asyncio.sleep({NAP_SECONDS:g}): wall time from "
        "their commit to the last finish",
        f"{'database':<12}{'runner':<30}{'wall s':>8}{'serial / wall':>15}{'CPU ms/task':>13}",
    ]
    for measured in result["runs"]:
        for name, label in (
            ("worker", "manage.py worker (ours)"),
            ("db_worker", "manage.py db_worker"),
        ):
            figures = measured["naps"][name]
            lines.append(
                f"{measured['database']:<12}{label:<30}{figures['wall']:>8.2f}"
                f"{serial / figures['wall']:>15.1f}{per_task_ms(figures, NAPS):>13}"
            )
    lines.append(f"{'-':<12}{'awaited one after another':<30}{serial:>8.2f}{1:>15.1f}{'-':>13}")
    return lines


def reading(result: dict) -> list[str]:
    """A paragraph for the section: the figures that answer the issue's questions."""
    by_db = {m["database"]: m for m in result["runs"]}
    serial = next(m["serial"]["wall"] for m in result["runs"] if "serial" in m)
    tasks = result["tasks"]
    rates = "; ".join(
        f"{db}: {rate(m['throughput']['1'], tasks):.0f} tasks/s with one worker, "
        f"{rate(m['throughput']['2'], tasks):.0f} with two"
        for db, m in by_db.items()
    )
    twice = sum(
        figures["ran_twice"]
        for m in by_db.values()
        for rounds in m["throughput"].values()
        for figures in rounds
    )
    naps = "; ".join(
        f"{db}: {m['naps']['worker']['wall']:.1f} s, against "
        f"{m['naps']['db_worker']['wall']:.1f} s for db_worker"
        for db, m in by_db.items()
    )
    latency = "; ".join(
        f"{db}: median {statistics.median(m['latency']['waits']) * 1000:.0f} ms"
        for db, m in by_db.items()
    )
    return [
        f"Written by `uv run --group bench python -m bench.tasks` on {result['date']} "
        f"({result['cores']} cores, {result['versions']}; {result['seconds']} s; the load "
        "generators and the database share the cores; load average after the run "
        f"{result['load_average_after'][0]:.1f}, other work included). See "
        "[Background tasks](tasks.md).",
        "",
        f"- **Concurrency.** {NAPS} tasks that each wait {NAP_SECONDS:g} s finish in one "
        f"`manage.py worker` process in {naps}; {serial:.1f} s one after another.",
        f"- **Throughput** of trivial tasks (median of {result['rounds']} rounds): {rates}; "
        f"tasks that ran twice: {twice}. Each task costs two writes (its claim and its "
        "result, each an UPDATE of its row) and about a millisecond of the worker's CPU: "
        "with the database and the workers on the same two cores, a second worker cannot "
        "double it, and the rounds vary widely on this shared machine.",
        f"- **Enqueue latency** while the worker is idle: {latency}; an idle worker looks "
        f"every TASKS_WORKER_INTERVAL ({result['interval']:g} s), so a task waits about half "
        "of it. A busy worker claims again as soon as a slot frees.",
    ]


def section(result: dict) -> list[str]:
    return [HEADING, "", *reading(result), "", "```text", *report(result), "```", ""]


def recorded() -> dict | None:
    """The latest run in bench/results/tasks.json, or None."""
    if not RESULTS.exists():
        return None
    return json.loads(RESULTS.read_text(encoding="utf-8"))[-1]


def kept_section() -> list[str]:
    """The section for a rewritten page: from the latest recorded run, else as the page has it.

    bench/results/ is not committed, so a fresh clone keeps the published figures.
    """
    if result := recorded():
        return section(result)
    return page_section(HEADING)


def write_section(result: dict) -> None:
    """Replace (or add before the images) the section in docs/benchmarks.md."""
    replace_section(HEADING, section(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3000, help="throughput: tasks per batch")
    parser.add_argument("--rounds", type=int, default=3, help="throughput: batches per case")
    parser.add_argument("--latency-samples", type=int, default=40)
    parser.add_argument(
        "--databases", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"]
    )
    parser.add_argument(
        "--page-only", action="store_true", help="rewrite the section from the recorded run"
    )
    args = parser.parse_args()
    if args.page_only:
        write_section(recorded())
        return
    print("bench.tasks")
    result = measure(args)
    points = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else []
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps([*points, result], indent=1) + "\n", encoding="utf-8")
    print("\n" + "\n".join(report(result)))
    write_section(result)
    print(f"\nappended to {RESULTS}; wrote the section in {PAGE}")


if __name__ == "__main__":
    main()
