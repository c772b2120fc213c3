"""Requests per second side by side: the server's floor, Django async, Django sync.

Bakes the default project (SQLite, DEBUG off), adds a few benchmark-only
modules to the baked copy (bench_*.py: settings variants, a raw ASGI app, one
article as JSON from a sync and an async view), and serves the same requests
several ways, one server at a time, each loaded by wrk from a second process:

- GET /healthz, wrk -c32: a raw ASGI callable under the same uvicorn (the
  floor); the project as baked (core.asgi.ASGIHandler, async-native
  middleware); the same with Django's own ASGIHandler; Django's handler with
  Django's stock middleware; gunicorn with one sync worker, stock middleware
  and none.
- GET one article as JSON at concurrency 1, 10 and 100: the async view under
  uvicorn against the same view written sync under gunicorn's sync worker,
  one process each.

Each server is measured once per round (--rounds, default 2), the rounds one
after another, and the median is reported, so a machine whose speed drifts
during the run shifts every server alike.

wrk is a C load generator that saturates one Python worker with a thread to
spare; a Python client would be the bottleneck. Everything binds to 127.0.0.1
and is stopped at the end.

    uv run python -m bench.http [--seconds 5] [--rounds 2]
"""

import argparse
import contextlib
import math
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import astuple, dataclass, field
from pathlib import Path

from bakery import bake, run
from servers import wait_for_port

from bench import ENV, cpu_times, serve, stop

GUNICORN = "gunicorn~=23.0"

# Written into the baked copy only; never part of the template.
BENCH_FILES = {
    "bench_settings.py": """
from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench_urls"
""",
    "bench_settings_stock.py": """
import django
from bench_settings import *  # noqa: F403

django.setup()
from core.testing import stock_middleware  # noqa: E402

# Django's own classes; ServeStatic (async-only) out, as static files are not served here.
MIDDLEWARE = [m for m in stock_middleware() if "servestatic" not in m.lower()]
""",
    "bench_settings_bare.py": """
from bench_settings import *  # noqa: F403

MIDDLEWARE = []
""",
    "bench_urls.py": """
from django.http import JsonResponse
from django.urls import path

from articles.models import Article
from articles.schemas import ArticleOut
from bench_slow import aslow, slow
from config.urls import urlpatterns as project_urlpatterns


def healthz_sync(request):
    # /healthz is an async view: under WSGI each call would start an event loop.
    return JsonResponse({"status": "ok"})


def article_sync(request, pk):
    article = Article.objects.with_related().get(pk=pk)
    return JsonResponse(ArticleOut.from_orm(article).model_dump(mode="json"))


async def article_async(request, pk):
    article = await Article.objects.with_related().aget(pk=pk)
    return JsonResponse(ArticleOut.from_orm(article).model_dump(mode="json"))


urlpatterns = [
    path("bench/sync-slow/", slow),
    path("bench/async-slow/", aslow),
    path("bench/healthz-sync", healthz_sync),
    path("bench/sync/<int:pk>/", article_sync),
    path("bench/async/<int:pk>/", article_async),
    *project_urlpatterns,
]
""",
    "bench_slow.py": """
from django.db import connection
from django.http import JsonResponse


def slow(request):
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_sleep(%s)", [0.2])
        else:  # SQLite has no sleep: count long enough
            cursor.execute(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < %s) "
                "SELECT count(*) FROM c",
                [3_000_000],
            )
        cursor.fetchone()
    return JsonResponse({"slow": True})


async def aslow(request):
    from asgiref.sync import sync_to_async

    return await sync_to_async(slow)(request)
""",
    "bench_floor.py": """
import json

BODY = json.dumps({"status": "ok"}).encode()
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def application(scope, receive, send):
    # The least an ASGI app can do for GET /healthz: what the server itself costs.
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
""",
    "bench_django_asgi.py": """
from django.core.asgi import get_asgi_application

# Django's own handler, for comparison with the project's core.asgi.ASGIHandler.
application = get_asgi_application()
""",
    "bench_article.py": """
import django

django.setup()
from django.contrib.auth import get_user_model  # noqa: E402

from articles.models import Article, Tag  # noqa: E402

author, _ = get_user_model().objects.get_or_create(username="bench")
article = Article.objects.create(
    author=author, title="Benchmark", content="x" * 2000, published=True
)
article.tags.set([Tag.objects.get_or_create(name=name)[0] for name in ("async", "django")])
print(article.pk)
""",
}

# argv: the handler class; DJANGO_SETTINGS_MODULE: the middleware it runs.
COUNT_HOPS = """
import asyncio, sys, django
from django.utils.module_loading import import_string
django.setup()
from core.testing import asgi_request, count_thread_hops

async def hops(handler):
    await asgi_request(handler, path="/healthz")  # warm: imports, first connection
    with count_thread_hops() as hops:
        await asgi_request(handler, path="/healthz")
    return len(hops)

print(asyncio.run(hops(import_string(sys.argv[1])())))
"""
OUR_HANDLER = "core.asgi.ASGIHandler"
DJANGOS_HANDLER = "django.core.handlers.asgi.ASGIHandler"


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us: float = math.nan  # server CPU per request, microseconds, when measured
    system_us: float = math.nan  # the part of it spent in the kernel

    @property
    def user_us(self) -> float:
        """The part of cpu_us spent outside the kernel."""
        return self.cpu_us - self.system_us


@dataclass
class Server:
    name: str
    command: str  # "uvicorn" or "gunicorn"
    app: str
    settings: str
    handler: str = ""  # the ASGI handler class whose thread hops are counted
    healthz: str = "/healthz"


@dataclass
class Results:
    healthz: dict[str, Load] = field(default_factory=dict)
    hops: dict[str, int] = field(default_factory=dict)
    article: dict[tuple[str, int], Load] = field(default_factory=dict)


HEALTHZ = [
    Server("raw ASGI (floor)", "uvicorn", "bench_floor:application", "bench_settings"),
    Server("async, template", "uvicorn", "config.asgi:application", "bench_settings", OUR_HANDLER),
    Server(
        "async, template, stock mw",
        "uvicorn",
        "config.asgi:application",
        "bench_settings_stock",
        OUR_HANDLER,
    ),
    Server(
        "async, Django's handler",
        "uvicorn",
        "bench_django_asgi:application",
        "bench_settings",
        DJANGOS_HANDLER,
    ),
    Server(
        "async, Django's handler, stock mw",
        "uvicorn",
        "bench_django_asgi:application",
        "bench_settings_stock",
        DJANGOS_HANDLER,
    ),
    Server(
        "sync gunicorn, stock mw", "gunicorn", "config.wsgi:application", "bench_settings_stock"
    ),
    Server("sync gunicorn, no mw", "gunicorn", "config.wsgi:application", "bench_settings_bare"),
]
ARTICLE = {
    "async": Server("async view, uvicorn", "uvicorn", "config.asgi:application", "bench_settings"),
    "sync": Server(
        "sync view, gunicorn", "gunicorn", "config.wsgi:application", "bench_settings_stock"
    ),
}
CONCURRENCY = (1, 10, 100)


def to_ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(port: int, path: str, connections: int, seconds: float, pid: int | None = None) -> Load:
    """Load 127.0.0.1:`port``path` with wrk; with the server's `pid`, its CPU per request
    too (that process's and its children's, from /proc)."""
    threads = min(2, connections)
    before = cpu_times(pid) if pid else (0.0, 0.0)
    result = run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds:g}s",
            "--latency",
            f"http://127.0.0.1:{port}{path}",
        ],
        cwd=Path.cwd(),
        timeout=seconds + 30,
    )
    if pid:
        after = cpu_times(pid)
        user, system = after[0] - before[0], after[1] - before[1]
    else:
        user = system = math.nan
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", result.stdout)
    if errors:
        raise RuntimeError(f"{path}: {errors[1]} failed responses\n{result.stdout}")
    latency = {
        quantile: to_ms(value, unit)
        for quantile, value, unit in re.findall(
            r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", result.stdout, re.MULTILINE
        )
    }
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)[1])
    if set(latency) != {"50", "99"}:
        raise RuntimeError(f"no latency distribution in wrk's output:\n{result.stdout}")
    requests = int(re.search(r"(\d+) requests in", result.stdout)[1])
    per_request = 1e6 / requests if requests else math.nan
    return Load(
        rps, latency["50"], latency["99"], (user + system) * per_request, system * per_request
    )


@contextlib.contextmanager
def served(project: Path, server: Server):
    env = {**ENV, "DJANGO_SETTINGS_MODULE": server.settings}
    process, port = serve(project, env, app=server.app, server=server.command)
    try:
        wait_for_port(port)
        yield port
    finally:
        stop(process)
        time.sleep(0.3)


def prepare(workdir: Path, database: str = "sqlite", env: dict | None = None) -> tuple[Path, int]:
    """Bake (`database`: sqlite, or postgresql at `env`'s DATABASE_URL), install
    (with gunicorn), migrate and create the article; its id."""
    project = bake(workdir, database="postgresql" if database != "sqlite" else "sqlite")
    run(["uv", "sync", "--quiet"], cwd=project)
    python = str(project / ".venv/bin/python")
    run(["uv", "pip", "install", "--quiet", "--python", python, GUNICORN], cwd=project)
    for name, text in BENCH_FILES.items():
        (project / name).write_text(text.lstrip())
    env = {**ENV, **(env or {}), "DJANGO_SETTINGS_MODULE": "bench_settings"}
    run([python, "manage.py", "migrate", "--noinput"], cwd=project, env=env)
    article = int(run([python, "bench_article.py"], cwd=project, env=env).stdout.split()[-1])
    return project, article


def median_load(loads: list[Load]) -> Load:
    return Load(*(statistics.median(values) for values in zip(*map(astuple, loads), strict=True)))


def measure(project: Path, article: int, seconds: float, rounds: int = 2) -> Results:
    """Every server once per round, the rounds one after another: a machine that
    speeds up or slows down during the run shifts every server alike. Each
    figure is the median over the rounds."""
    results = Results()
    python = str(project / ".venv/bin/python")
    for server in HEALTHZ:
        if server.handler:
            env = {**ENV, "DJANGO_SETTINGS_MODULE": server.settings}
            counted = run([python, "-c", COUNT_HOPS, server.handler], cwd=project, env=env)
            results.hops[server.name] = int(counted.stdout.split()[-1])
    healthz: dict[str, list[Load]] = {server.name: [] for server in HEALTHZ}
    articles: dict[tuple[str, int], list[Load]] = {}
    for round_ in range(1, rounds + 1):
        for server in HEALTHZ:
            with served(project, server) as port:
                wrk(port, server.healthz, 32, 1)  # warm up
                healthz[server.name].append(wrk(port, server.healthz, 32, seconds))
            rps = healthz[server.name][-1].rps
            print(f"  round {round_} /healthz  {server.name:<36}{rps:>9.0f} req/s")
        for kind, server in ARTICLE.items():
            with served(project, server) as port:
                path = f"/bench/{kind}/{article}/"
                wrk(port, path, 10, 1)
                for connections in CONCURRENCY:
                    load = wrk(port, path, connections, seconds)
                    articles.setdefault((kind, connections), []).append(load)
                    print(
                        f"  round {round_} article   {server.name:<24} c={connections:<4}"
                        f"{load.rps:>9.0f} req/s"
                    )
    results.healthz = {name: median_load(loads) for name, loads in healthz.items()}
    results.article = {key: median_load(loads) for key, loads in articles.items()}
    return results


def report(results: Results, seconds: float, rounds: int = 2) -> list[str]:
    lines = [f"GET /healthz, 1 worker each, wrk -t2 -c32, {seconds:g} s, median of {rounds} rounds"]
    floor = results.healthz["raw ASGI (floor)"].rps
    sync = results.healthz["sync gunicorn, stock mw"].rps
    lines.append(f"{'server':<36}{'req/s':>9}{'p99 ms':>9}{'/ floor':>9}{'/ sync':>8}{'hops':>6}")
    for name, load in results.healthz.items():
        hops = results.hops.get(name, "-")
        lines.append(
            f"{name:<36}{load.rps:>9.0f}{load.p99_ms:>9.1f}{load.rps / floor:>9.2f}"
            f"{load.rps / sync:>8.2f}{hops:>6}"
        )
    lines.append("hops: sync_to_async calls (thread hops) per GET /healthz, counted in process")
    lines.append("")
    lines.append(
        f"GET one article as JSON, 1 worker each, {seconds:g} s per concurrency, "
        f"median of {rounds} rounds"
    )
    lines.append(
        f"{'concurrency':<12}{'async req/s':>12}{'p99 ms':>9}{'sync req/s':>12}"
        f"{'p99 ms':>9}{'async/sync':>11}"
    )
    for connections in CONCURRENCY:
        a = results.article["async", connections]
        s = results.article["sync", connections]
        lines.append(
            f"{connections:<12}{a.rps:>12.0f}{a.p99_ms:>9.1f}{s.rps:>12.0f}{s.p99_ms:>9.1f}"
            f"{a.rps / s.rps:>11.2f}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=2, help="every server once per round")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk")
    workdir = Path(tempfile.mkdtemp(prefix="bench-http-"))
    try:
        project, article = prepare(workdir)
        results = measure(project, article, args.seconds, args.rounds)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("\n".join(report(results, args.seconds, args.rounds)))


if __name__ == "__main__":
    main()
