"""Benchmarks, each run as `uv run python -m bench.<name>`, and what they share.

Each bakes a project with the template suite's helpers (tests/bakery.py,
tests/servers.py) and serves it with uvicorn as production would.
"""

import contextlib
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from servers import free_port, wait_for_port

# Production settings on plain HTTP, with no .env file.
ENV = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "bench-" + "k3y" * 20,
    "DJANGO_SECURE_SSL_REDIRECT": "false",
    "DJANGO_LOG_LEVEL": "WARNING",
    "DJANGO_ENV_FILE": "/nonexistent/.env",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,testserver",
}
SHUTDOWN_TIMEOUT = 30.0


def serve(
    project: Path,
    env: dict,
    log: Path | None = None,
    app: str = "config.asgi:application",
    server: str = "uvicorn",
    workers: int = 1,
    threads: int = 1,
) -> tuple[subprocess.Popen, int]:
    """Start `server` serving `app` of `project` on a free port; the caller waits for the port.

    `server` is uvicorn, or gunicorn (WSGI) with `workers` sync workers, or
    threaded (gthread) ones when `threads` > 1. The server gets this process's
    environment (and limits) plus `env`; its output goes to `log` when given.
    """
    port = free_port()
    if server == "uvicorn":
        command = [
            str(project / ".venv/bin/uvicorn"),
            app,
            "--host=127.0.0.1",
            f"--port={port}",
            "--no-access-log",
            "--log-level=warning",
        ]
        if workers > 1:
            command.append(f"--workers={workers}")
    else:
        command = [
            str(project / ".venv/bin/gunicorn"),
            app,
            f"--bind=127.0.0.1:{port}",
            f"--workers={workers}",
            f"--worker-class={'gthread' if threads > 1 else 'sync'}",
            f"--threads={threads}",
            "--log-level=warning",
        ]
    with contextlib.ExitStack() as stack:
        output = stack.enter_context(log.open("w")) if log else None
        process = subprocess.Popen(
            command,
            cwd=project,
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT if log else None,
            start_new_session=True,
        )
    return process, port


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_times(pid: int) -> tuple[float, float]:
    """User and system CPU (all threads) of process `pid` and its descendants, in
    seconds, read from /proc: `utime` and `stime` of /proc/<pid>/stat (proc(5))."""
    children: dict[int, list[int]] = {}
    times: dict[int, tuple[float, float]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited meanwhile
            continue
        child = int(stat.parent.name)
        children.setdefault(int(fields[1]), []).append(child)  # field 4: ppid
        times[child] = (int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS)  # 14, 15
    user = system = 0.0
    todo = [pid]
    while todo:
        current = todo.pop()
        its_user, its_system = times.get(current, (0.0, 0.0))
        user, system = user + its_user, system + its_system
        todo.extend(children.get(current, ()))
    return user, system


def stop(server: subprocess.Popen) -> str:
    """SIGTERM the server's process group, SIGKILL after SHUTDOWN_TIMEOUT; say how it ended."""
    started = time.monotonic()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=SHUTDOWN_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
        return f"killed: still running {SHUTDOWN_TIMEOUT:.0f}s after SIGTERM"
    return f"exit {server.returncode} in {time.monotonic() - started:.1f}s after SIGTERM"


@dataclass
class Served:
    """A uvicorn process of `serving()`, its port and, once stopped, how it ended."""

    process: subprocess.Popen
    port: int
    shutdown: str = ""


@contextlib.contextmanager
def serving(project: Path, env: dict, logs: list[Path]) -> Iterator[list[Served]]:
    """One uvicorn process per log, each on its own port, all listening; stopped at exit."""
    servers: list[Served] = []
    try:
        for log in logs:
            servers.append(Served(*serve(project, env, log)))
        for server in servers:
            wait_for_port(server.port)
        yield servers
    finally:
        for server in servers:
            server.shutdown = stop(server.process)


def quantile_ms(values: list[float], q: float) -> str:
    """The q-quantile (nearest rank) of sorted seconds, in milliseconds."""
    if not values:
        return "-"
    return f"{values[min(len(values) - 1, math.ceil(q * len(values)) - 1)] * 1000:.1f}"


PAGE = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def section_lines(lines: list[str], heading: str) -> tuple[int, int] | None:
    """Where the `heading` section is among the page's lines: (start, end), or None."""
    if heading not in lines:
        return None
    start = lines.index(heading)
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].startswith(("## ", "!["))),
        len(lines),
    )
    return start, end


def page_section(heading: str) -> list[str]:
    """The `heading` section as docs/benchmarks.md has it, or [] (for a rewritten page)."""
    if not PAGE.exists():
        return []
    lines = PAGE.read_text(encoding="utf-8").splitlines()
    found = section_lines(lines, heading)
    return lines[slice(*found)] if found else []


def replace_section(heading: str, new: list[str]) -> None:
    """Replace the `heading` section of docs/benchmarks.md with `new`, or add it
    before the images."""
    lines = PAGE.read_text(encoding="utf-8").splitlines()
    if found := section_lines(lines, heading):
        start, end = found
        lines[start:end] = new
    else:
        end = next((i for i, line in enumerate(lines) if line.startswith("![")), len(lines))
        lines[end:end] = new
    PAGE.write_text("\n".join(lines) + "\n", encoding="utf-8")
