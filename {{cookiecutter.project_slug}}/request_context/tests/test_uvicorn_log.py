"""uvicorn's own log lines, the access line above all, share the project's JSON format.

uvicorn configures its loggers before it loads the application; the project's
LOGGING (config/settings.py) then gives them its handler. Served here as the
README's production command serves it: one process, which both configures and
loads. A `--workers N` process repeats that order in each worker (the template's
live suite reads a two-worker server's log).
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from django.conf import settings


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a unix socket (uvicorn's `--uds`); the standard library only,
    since this app's tests run whether or not httpx is a dependency."""

    def __init__(self, path: Path, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(self.timeout)
        self.sock.connect(str(self.path))


def serve(path: Path) -> subprocess.Popen:
    environment = {
        **os.environ,
        "DJANGO_ENV_FILE": "/nonexistent/.env",  # no .env: DEBUG off, as in production
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
    }
    command = [
        *(sys.executable, "-m", "uvicorn", "config.asgi:application"),
        *("--uds", str(path), "--http", "core.protocol:HttpToolsProtocol"),
    ]
    return subprocess.Popen(
        command,
        cwd=settings.BASE_DIR,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def listening(path: Path, server: subprocess.Popen) -> bool:
    """Whether the server accepts connections on `path`, within 30 s."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and server.poll() is None:
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(str(path))
            except OSError:  # not bound or not listening yet
                time.sleep(0.1)
            else:
                return True
    return False


def test_the_production_access_line_is_json():
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory, "uvicorn.sock")
        server = serve(path)
        try:
            status = None
            if listening(path, server):
                connection = UnixHTTPConnection(path, timeout=20)
                try:
                    connection.request("GET", "/healthz")
                    status = connection.getresponse().status
                finally:
                    connection.close()
        finally:
            server.send_signal(signal.SIGINT)
            output, _ = server.communicate(timeout=30)
    assert status == 200, output
    (access,) = [line for line in output.splitlines() if "GET /healthz" in line]
    record = json.loads(access)
    assert record["logger"] == "uvicorn.access"
    assert record["level"] == "INFO"
    assert record["message"].endswith('"GET /healthz HTTP/1.1" 200')
    assert "color_message" not in record
    # uvicorn's own lines too.
    (started,) = [line for line in output.splitlines() if "Started server process" in line]
    assert json.loads(started)["logger"] == "uvicorn.error"
