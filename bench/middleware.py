"""Middleware stacks side by side: Django's stock classes vs core.middleware.

Bakes the default project, serves `/healthz` with uvicorn (one worker, DEBUG
off) once per stack, loads each with wrk from a second process, alternating
the stacks, and prints requests per second, thread hops per request and the
ratio. Everything binds to 127.0.0.1 and is stopped at the end.

    uv run python -m bench.middleware [--seconds 10] [--rounds 3]
"""

import argparse
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bakery import bake, run
from servers import wait_for_port

from bench import ENV, serve, stop

# Prints the project's MIDDLEWARE with each async-native class swapped for the
# Django class it subclasses.
STOCK_MIDDLEWARE = """
import json, django
django.setup()
from core.testing import stock_middleware
print(json.dumps(stock_middleware()))
"""

COUNT_HOPS = """
import asyncio, django
django.setup()
from core.testing import request_hops
print(len(asyncio.run(request_hops("/healthz"))))
"""


def wrk(port: int, seconds: int) -> float:
    result = run(
        ["wrk", "-t2", "-c32", f"-d{seconds}s", f"http://127.0.0.1:{port}/healthz"],
        cwd=Path.cwd(),
        timeout=seconds + 30,
    )
    return float(re.search(r"Requests/sec:\s+([\d.]+)", result.stdout).group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk")

    workdir = Path(tempfile.mkdtemp(prefix="bench-middleware-"))
    try:
        project = bake(workdir)
        run(["uv", "sync", "--quiet"], cwd=project)
        python = str(project / ".venv/bin/python")
        env = {**ENV, "DJANGO_SETTINGS_MODULE": "config.settings"}
        stock = run([python, "-c", STOCK_MIDDLEWARE], cwd=project, env=env).stdout.strip()
        (project / "config" / "settings_stock.py").write_text(
            f"from config.settings import *  # noqa: F403\n\nMIDDLEWARE = {stock}\n"
        )
        stacks = {"stock": "config.settings_stock", "native": "config.settings"}
        hops, rates = {}, {name: [] for name in stacks}
        for name, module in stacks.items():
            result = run(
                [python, "-c", COUNT_HOPS],
                cwd=project,
                env={**ENV, "DJANGO_SETTINGS_MODULE": module},
            )
            hops[name] = int(result.stdout.split()[-1])
        for _ in range(args.rounds):
            for name, module in stacks.items():
                server, port = serve(project, {**ENV, "DJANGO_SETTINGS_MODULE": module})
                try:
                    wait_for_port(port)
                    wrk(port, 2)  # warm up
                    rates[name].append(wrk(port, args.seconds))
                finally:
                    stop(server)
                time.sleep(0.5)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"\nGET /healthz, uvicorn 1 worker, wrk -t2 -c32, {args.rounds} x {args.seconds}s each")
    print(f"{'stack':<8}{'hops/request':>14}{'req/s (median)':>16}  all rounds")
    for name in stacks:
        rounds = ", ".join(f"{rate:.0f}" for rate in rates[name])
        print(f"{name:<8}{hops[name]:>14}{statistics.median(rates[name]):>16.0f}  {rounds}")
    ratio = statistics.median(rates["native"]) / statistics.median(rates["stock"])
    print(f"native / stock: {ratio:.2f}x requests per second")


if __name__ == "__main__":
    main()
