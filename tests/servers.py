"""Throwaway PostgreSQL and Redis servers on free loopback ports.

Each server lives in its own temporary directory and is stopped (and the
directory removed) when its context manager exits, even after a failure.
"""

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

IN_CI = os.environ.get("CI", "").lower() == "true"


class ServerUnavailable(RuntimeError):
    """The server binaries are not installed."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def postgres_bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    found = shutil.which("pg_ctl")
    if found:
        candidates.append(str(Path(found).parent))
    for directory in reversed(candidates):
        if (Path(directory) / "initdb").exists():
            return Path(directory)
    raise ServerUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql"
    )


@dataclass
class Postgres:
    port: int
    root: Path
    bindir: Path
    user: str = "postgres"

    def url(self, database: str) -> str:
        return f"postgres://{self.user}@127.0.0.1:{self.port}/{database}"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _run(self, program: str, *args: str) -> None:
        # initdb and postgres refuse to run as root.
        command = [str(self.bindir / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        """Start (or start again, on the same port and data)."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "log"),
            "-w",
            "start",
        )

    def stop(self) -> None:
        """Stop at once: open connections are cut, as when the server dies."""
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")


@contextlib.contextmanager
def postgres_server() -> Iterator[Postgres]:
    root = Path(tempfile.mkdtemp(prefix="pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    server = Postgres(port=free_port(), root=root, bindir=postgres_bindir())
    try:
        server._run(
            "initdb",
            "-D",
            str(server.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
        )
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Redis:
    port: int
    directory: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or start again, on the same port) with no persistence: a restart loses data."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServerUnavailable("redis-server not found: apt-get install redis-server")
        subprocess.run(
            [
                binary,
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.directory),
                "--pidfile", str(self.pidfile),
                "--logfile", str(self.directory / "redis.log"),
                "--daemonize", "yes",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )  # fmt: skip
        wait_for_port(self.port)
        # A daemonized redis-server may listen before it writes its pid file.
        deadline = time.monotonic() + 10
        while not self.pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.01)

    @property
    def pidfile(self) -> Path:
        return self.directory / "redis.pid"

    @property
    def pid(self) -> int:
        return int(self.pidfile.read_text())

    def stop(self) -> None:
        pidfile = self.pidfile
        if not pidfile.exists():
            return
        pid = self.pid
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.02)
        pidfile.unlink(missing_ok=True)


@contextlib.contextmanager
def redis_server() -> Iterator[Redis]:
    server = Redis(port=free_port(), directory=Path(tempfile.mkdtemp(prefix="redis-")))
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)


def served_env(database: Path, **variables: str) -> dict[str, str]:
    """Environment for serving a baked project as production would, on plain HTTP.

    No .env file, DEBUG off, a SQLite database at `database`, plus `variables`.
    """
    return {
        **os.environ,
        "DJANGO_ENV_FILE": "/nonexistent/.env",
        "DJANGO_SECRET_KEY": "live-" + "s3cret" * 10,
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DATABASE_URL": f"sqlite:///{database}",
        **variables,
    }


@dataclass
class Uvicorn:
    """A baked project served by uvicorn on a free loopback port."""

    process: subprocess.Popen
    port: int
    log: Path
    stopped_output: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        """What the server printed so far (all of it, once stopped)."""
        if self.stopped_output is not None:
            return self.stopped_output
        return self.log.read_text(errors="replace")


def stop_process(process: subprocess.Popen, timeout: float) -> None:
    """SIGTERM, then SIGKILL if `process` has not exited within `timeout` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


@contextlib.contextmanager
def uvicorn_server(python: Path, project: Path, env: dict[str, str], *args: str):
    """Serve `project` with the uvicorn of its environment; stopped (SIGTERM) on exit."""
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="uvicorn-", suffix=".log")[1])
    command = [python, "-m", "uvicorn", "config.asgi:application", "--port", str(port), *args]
    with log.open("w") as output:
        process = subprocess.Popen(
            command, cwd=project, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    server = Uvicorn(process, port, log)
    try:
        try:
            wait_for_port(port, timeout=60)
        except TimeoutError:
            raise RuntimeError(f"uvicorn did not start:\n{server.output()}") from None
        yield server
    finally:
        stop_process(process, timeout=15)
        server.stopped_output = server.output()
        log.unlink(missing_ok=True)
