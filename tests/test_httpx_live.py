"""GET /api/dashboard/ served by uvicorn against real upstream servers on loopback.

One upstream answers at once, one takes longer than the deadline, one answers
500: the dashboard still answers 200 within the deadline, each source with its
own outcome.
"""

import json
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
from bakery import bake, run
from servers import served_env, uvicorn_server

DEADLINE = 1.0


class Upstream(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/slow":
            time.sleep(DEADLINE * 4)
        status = 500 if self.path == "/broken" else 200
        body = json.dumps({"path": self.path}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextmanager
def upstream_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_dashboard_answers_within_the_deadline_whatever_the_upstreams_do(tmp_path, environments):
    project = bake(tmp_path, use_httpx=True)
    python = environments.python_for(project)
    with upstream_server() as upstream:
        sources = ",".join(f"{name}={upstream}/{name}" for name in ("fast", "slow", "broken"))
        env = served_env(
            tmp_path / "live.sqlite3", DASHBOARD_SOURCES=sources, DASHBOARD_TIMEOUT=str(DEADLINE)
        )
        run([python, "manage.py", "migrate", "--noinput"], cwd=project, env=env)
        with uvicorn_server(python, project, env) as server, httpx.Client(timeout=10) as client:
            client.get(f"{server.url}/healthz")  # warm up the process
            started = time.perf_counter()
            response = client.get(f"{server.url}/api/dashboard/")
            took = time.perf_counter() - started
        assert "Traceback" not in server.output(), server.output()
    assert response.status_code == 200
    sources = response.json()["sources"]
    assert sources["fast"]["ok"] is True
    assert sources["fast"]["data"] == {"path": "/fast"}
    assert (sources["slow"]["ok"], sources["slow"]["error"]) == (False, "timeout")
    assert (sources["broken"]["ok"], sources["broken"]["error"]) == (False, "http 500")
    assert took < DEADLINE + 0.5
    assert sources["slow"]["elapsed_ms"] < (DEADLINE + 0.1) * 1000
    # The shutdown closed the shared client cleanly (the lifespan wrapper ran).
    assert "Waiting for application shutdown." in server.output()
    assert "Application shutdown complete." in server.output()
