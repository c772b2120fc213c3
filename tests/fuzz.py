"""Hostile inputs for a deployed bake, and the bookkeeping of what they got.

Every input is sent over loopback to a project served by `live.deploy()`,
one after another, and its answer is recorded in a `Findings`: the answer
(an HTTP status, a websocket close code or "no answer") counted by source for
the table the test prints, and a problem when the answer is not one the input
should get. Every ERROR line the servers log meanwhile is a problem too,
charged to the input that was being sent (the fuzz deployment has no outage,
so whatever is logged at ERROR was caused by a client).

The inputs come in the five kinds of issue 16: a client's mistake that
becomes a 5xx, a 1011 or an ERROR line (kind 1); cost paid before it is
bounded (kind 2); long-lived connections (kind 3); HTTP semantics and the
published contract (kind 4, with schemathesis). Each input is bounded in
bytes and seconds.
"""

import asyncio
import collections
import contextlib
import json
import os
import re
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
from live import Deployment
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

# What the proxy in front adds: the project then sees the request as HTTPS.
PROXY_HEADERS = {"X-Forwarded-Proto": "https"}
# A line the servers log at ERROR or above: the project's JSON logs, or uvicorn's own
# (`ERROR:    Exception in ASGI application`, then a traceback).
ERROR_LINE = re.compile(r'"level": "(ERROR|CRITICAL)"|^(ERROR|CRITICAL):')
TRACEBACK = "Traceback (most recent call last)"
# How long any one answer may take before it counts as "no answer": generous, for a
# machine that runs the whole matrix beside this.
ANSWER_SECONDS = 10.0
# Larger than every body cap the project sets; never sent whole.
DECLARED_BODY_BYTES = 300 * 1024 * 1024
# A chunked body is sent up to this size; the server must answer before the end.
CHUNKED_BODY_BYTES = 32 * 1024 * 1024
# Close codes a server may use for a frame it cannot take (RFC 6455 7.4.1): the
# client sent invalid UTF-8 (1007), broke policy, such as the rate limit (1008),
# or sent a frame over the size limit (1009). 1011 means the server failed.
CLIENT_FAULT_CLOSES = {1007, 1008, 1009}


class LogWatcher:
    """Reads what the servers logged since the last call."""

    def __init__(self, log: Path):
        self._file = log.open(errors="replace")
        self._file.seek(0, os.SEEK_END)

    def errors(self) -> list[str]:
        """ERROR lines logged since the last call, first line of each (tracebacks follow)."""
        found, previous = [], ""
        for line in self._file.read().splitlines():
            # A traceback printed on its own counts; one after its ERROR line is that line's.
            if ERROR_LINE.search(line) or (
                line.startswith(TRACEBACK) and not ERROR_LINE.search(previous)
            ):
                found.append(line)
            previous = line
        return found

    def close(self) -> None:
        self._file.close()


@dataclass
class Findings:
    """The answers every input got, and the problems among them."""

    watcher: LogWatcher
    answers: collections.Counter = field(default_factory=collections.Counter)
    problems: list[str] = field(default_factory=list)
    tried: collections.Counter = field(default_factory=collections.Counter)

    def record(self, kind: int, name: str, answer, problem: str | None = None, source="corpus"):
        """Count `answer` for `source`; note `problem`, and any ERROR line logged meanwhile."""
        self.tried[source] += 1
        self.answers[source, str(answer)] += 1
        if problem:
            self.problems.append(f"kind {kind} | {name} | {problem}")
        self.charge_logs(kind, name)

    def charge_logs(self, kind: int, name: str) -> None:
        """Note each distinct ERROR line logged since the last input, with its count."""
        counts = collections.Counter(map(log_summary, self.watcher.errors()))
        for summary, count in counts.items():
            times = f" ({count} times)" if count > 1 else ""
            self.problems.append(f"kind {kind} | {name} | logged{times}: {summary}")

    def table(self) -> str:
        """Answers by status (rows) and source (columns), with the inputs tried per source."""
        sources = sorted(self.tried)
        statuses = sorted({answer for _, answer in self.answers}, key=_status_order)
        width = max([14, *(len(s) + 2 for s in sources)])
        lines = [f"{'answer':<16}" + "".join(f"{s:>{width}}" for s in sources)]
        for status in statuses:
            counts = "".join(f"{self.answers[s, status] or '':>{width}}" for s in sources)
            lines.append(f"{status:<16}{counts}")
        lines.append(
            f"{'inputs tried':<16}" + "".join(f"{self.tried[s]:>{width}}" for s in sources)
        )
        return "\n".join(lines)


def log_summary(line: str) -> str:
    """A log line without what changes from one record to the next (time, request id)."""
    with contextlib.suppress(ValueError, TypeError, KeyError):
        record = json.loads(line)
        return f"{record['level']} {record['logger']}: {record['message']}"[:300]
    return line[:300]


def _status_order(answer: str):
    return (0, int(answer), "") if answer.isdigit() else (1, 0, answer)


def problem_for(status: int, expected: Iterable[int]) -> str | None:
    expected = set(expected)
    if status >= 500:
        return f"answered {status}"
    if status not in expected:
        return f"answered {status}, expected one of {sorted(expected)}"
    return None


def workers_rss(deployment: Deployment) -> dict[int, int]:
    """Resident memory of each worker, in bytes, by pid."""
    return {w.pid: w.memory_info().rss for w in deployment.workers()}


def workers_read_bytes(deployment: Deployment) -> int:
    """Bytes the workers read so far through read() calls, page cache included."""
    total = 0
    for worker in deployment.workers():
        with contextlib.suppress(psutil.Error):
            total += worker.io_counters().read_chars
    return total


# ---- Raw HTTP: inputs an HTTP client library refuses to send -----------------------------


@dataclass
class RawAnswer:
    status: int | None  # None: the server closed or said nothing in time
    headers: dict[str, str]
    closed: bool  # the server closed the connection without an answer

    @property
    def label(self) -> str:
        if self.status is not None:
            return str(self.status)
        return "closed" if self.closed else "no answer"


async def read_head(reader: asyncio.StreamReader, seconds: float) -> RawAnswer:
    """The status and headers of the next answer on `reader`."""
    try:
        async with asyncio.timeout(seconds):
            head = await reader.readuntil(b"\r\n\r\n")
    except TimeoutError:
        return RawAnswer(None, {}, closed=False)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
        return RawAnswer(None, {}, closed=True)
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawAnswer(int(status_line.split()[1]), headers, closed=False)


async def raw_exchange(port: int, request: bytes, seconds: float = ANSWER_SECONDS) -> RawAnswer:
    """Send `request` bytes as they are; the answer's status and headers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        with contextlib.suppress(OSError):
            writer.write(request)
            await writer.drain()
        return await read_head(reader, seconds)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def request_head(method: str, path: str, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "X-Forwarded-Proto: https"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def declared_body_over_cap(port: int, method: str, path: str, headers: dict) -> RawAnswer:
    """Declare a 300 MB body, send 64 KiB of it: the answer must come without the rest."""
    head = request_head(
        method,
        path,
        {
            **headers,
            "Content-Type": "application/json",
            "Content-Length": str(DECLARED_BODY_BYTES),
        },
    )
    return await raw_exchange(port, head + b" " * 65536)


async def chunked_body_over_cap(port: int, method: str, path: str, headers: dict):
    """Send a chunked body of up to 32 MiB; (answer, bytes sent before it came, whole body sent)."""
    head = request_head(
        method,
        path,
        {**headers, "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
    )
    chunk = b" " * 65536
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer_task = asyncio.create_task(read_head(reader, 20))
    sent = 0
    try:
        writer.write(head)
        with contextlib.suppress(OSError):
            async with asyncio.timeout(15):
                while sent < CHUNKED_BODY_BYTES and not answer_task.done():
                    writer.write(framed)
                    await writer.drain()
                    sent += len(chunk)
                if not answer_task.done():
                    writer.write(b"0\r\n\r\n")
                    await writer.drain()
        whole = sent >= CHUNKED_BODY_BYTES and not answer_task.done()
        return await answer_task, sent, whole
    finally:
        answer_task.cancel()
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def pipelined_then_gone(port: int, path: str, count: int, linger: float = 0.3) -> None:
    """Send `count` pipelined GETs of `path`, read nothing, and reset the connection after
    `linger` seconds: the server is answering one of them when the client is gone."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        with contextlib.suppress(OSError):
            writer.write(request_head("GET", path) * count)
            await writer.drain()
        await asyncio.sleep(linger)
    finally:
        # SO_LINGER 0: close with a reset, as a client that crashed or timed out does.
        # The server may have dropped the connection first (more than 64 requests
        # waiting): the socket is then closed already, and there is nothing to reset.
        sock = writer.get_extra_info("socket")
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def write_without_reading(writer: asyncio.StreamWriter, data: bytes, seconds: float) -> int:
    """Write `data` again and again for `seconds`, never reading; the bytes the server took."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    sent = 0
    while (left := deadline - loop.time()) > 0:
        try:
            writer.write(data)
            async with asyncio.timeout(left):
                await writer.drain()
        except (TimeoutError, OSError):
            break  # the server stopped reading, or dropped the connection
        sent += len(data)
    return sent


async def pipeline_flood(port: int, path: str, seconds: float) -> int:
    """Pipelined GETs of `path` for `seconds`, no answer read; the bytes the server took."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        return await write_without_reading(writer, request_head("GET", path) * 100, seconds)
    finally:
        writer.transport.abort()


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """A final, masked frame from a client (RFC 6455 5.2), payload under 126 bytes."""
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return struct.pack("!BB", 0x80 | opcode, 0x80 | len(payload)) + mask + masked


async def ping_flood(port: int, path: str, origin: str, seconds: float) -> str:
    """Open a websocket on a bare socket, then send 125-byte pings for `seconds` and read
    none of the pongs; the handshake's answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        upgrade = {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version": "13",
            "Origin": origin,
        }
        writer.write(request_head("GET", path, upgrade))
        answer = await read_head(reader, ANSWER_SECONDS)
        if answer.status == 101:
            await write_without_reading(writer, masked_frame(0x9, b"p" * 125) * 100, seconds)
        return answer.label
    finally:
        writer.transport.abort()


# ---- schemathesis ----------------------------------------------------------------------


@dataclass
class SchemathesisRun:
    statuses: collections.Counter
    failures: list[str]
    exit_code: int
    output_tail: str


def run_schemathesis(
    url: str, headers: dict[str, str], seed: int, max_examples: int, report: Path
) -> SchemathesisRun:
    """Every schemathesis check against `url`'s OpenAPI document, from the template's env."""
    command = [
        str(Path(sys.executable).parent / "st"),
        "run",
        f"{url}/api/openapi.json",
        "--checks=all",
        f"--max-examples={max_examples}",
        f"--seed={seed}",
        "--generation-database=none",
        "--continue-on-failure",
        "--no-shrink",
        "--request-timeout=10",
        "--workers=1",
        "--no-color",
        "--output-truncate=true",
        "--report=ndjson",
        f"--report-ndjson-path={report}",
    ]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=240, cwd=report.parent, check=False
    )
    statuses = collections.Counter()
    failures: dict[str, list[str]] = collections.defaultdict(list)  # failure -> its cases
    if report.exists():
        for line in report.read_text().splitlines():
            scenario = json.loads(line).get("ScenarioFinished")
            if not scenario:
                continue
            recorder = scenario["recorder"]
            for interaction in recorder.get("interactions", {}).values():
                response = interaction.get("response")
                statuses[str(response["status_code"]) if response else "no answer"] += 1
            for case_id, failure in failed_checks(recorder):
                case = recorder["cases"][case_id]["value"]
                message = failure["message"].replace("\n", "; ")[:200]
                key = f"{failure['code']} {failure['title']}: {failure['operation']}: {message}"
                failures[key].append(f"{case['method']} {case['path']} (case {case_id})")
    listed = [
        f"{failure} ({len(cases)} cases, e.g. {cases[0]})" for failure, cases in failures.items()
    ]
    return SchemathesisRun(statuses, sorted(listed), result.returncode, result.stdout[-3000:])


def failed_checks(recorder: dict):
    """(case id, failure) for each check that failed in a schemathesis scenario."""
    for case_id, checks in recorder.get("checks", {}).items():
        for check in checks:
            if check["status"] == "failure":
                yield case_id, check["failure_info"]["failure"]


# ---- websockets ------------------------------------------------------------------------


def ws_url(deployment: Deployment, path: str) -> str:
    return f"ws://127.0.0.1:{deployment.server.port}{path}"


async def ws_handshake(deployment: Deployment, path: str, **options) -> str:
    """Open `path` as a websocket and close it; "101", or the refusal's HTTP status."""
    options.setdefault("origin", deployment.url)
    try:
        async with connect(ws_url(deployment, path), open_timeout=ANSWER_SECONDS, **options):
            return "101"
    except InvalidStatus as refused:
        return str(refused.response.status_code)
    except (InvalidHandshake, OSError, TimeoutError) as failed:
        return f"failed: {type(failed).__name__}"


async def frame_answer(deployment: Deployment, room: str, frame: str | bytes, **send) -> tuple:
    """Send one frame to a fresh socket in `room`; (answer label, problem or None).

    A bad frame must get an {"error": ...} answer and leave the socket working:
    a valid message sent next comes back from the room.
    """
    async with connect(
        ws_url(deployment, f"/ws/rooms/{room}/"),
        origin=deployment.url,
        open_timeout=ANSWER_SECONDS,
        max_size=None,
    ) as websocket:
        try:
            await websocket.send(frame, **send)
            async with asyncio.timeout(ANSWER_SECONDS):
                answer = json.loads(await websocket.recv())
        except ConnectionClosed:
            return close_label(websocket), close_problem(websocket)
        except TimeoutError:
            return "no answer", "no answer to the frame"
        if "error" not in answer:
            return "ws accepted", f"the room took it: {answer}"
        try:
            await websocket.send(json.dumps({"message": "still here"}))
            async with asyncio.timeout(ANSWER_SECONDS):
                while (json.loads(await websocket.recv())).get("message") != "still here":
                    pass
        except ConnectionClosed:
            return close_label(websocket), close_problem(websocket) or "closed after the error"
        except TimeoutError:
            return "ws error, deaf", "the socket stayed open but the room stopped answering"
        return "ws error+open", None


def close_label(websocket) -> str:
    return f"ws close {websocket.close_code}"


def close_problem(websocket) -> str | None:
    code = websocket.close_code
    if code in CLIENT_FAULT_CLOSES:
        return None
    reason = f" ({websocket.close_reason})" if websocket.close_reason else ""
    return f"closed with {code}{reason} for a client's mistake"


async def flood(deployment: Deployment, room: str, frames: int) -> tuple:
    """Send `frames` valid messages at once: past the rate limit the socket is told and closed."""
    async with connect(
        ws_url(deployment, f"/ws/rooms/{room}/"),
        origin=deployment.url,
        open_timeout=ANSWER_SECONDS,
    ) as websocket:
        with contextlib.suppress(ConnectionClosed):
            for n in range(frames):
                await websocket.send(json.dumps({"message": f"flood {n}"}))
        errors = 0
        with contextlib.suppress(ConnectionClosed, TimeoutError):
            async with asyncio.timeout(ANSWER_SECONDS * 2):
                while True:
                    errors += "error" in json.loads(await websocket.recv())
        if websocket.close_code is None:
            return "ws open", f"{frames} frames at once: the socket stayed open"
        if not errors:
            return close_label(websocket), "closed without an error message"
        return close_label(websocket), close_problem(websocket)


async def header_hang(port: int, request: bytes) -> RawAnswer:
    """Send `request` and wait for anything: an answer, or the server closing."""
    return await raw_exchange(port, request)


async def silent_and_slow_clients(deployment: Deployment, client: httpx.AsyncClient) -> tuple:
    """100 silent connections and 10 sending a header byte each 0.3 s, for 3 s.

    Meanwhile /healthz must still answer. Returns (its statuses, the seconds it
    took at worst, slow clients the server closed, silent ones it closed).
    """
    port = deployment.server.port
    silent = [await asyncio.open_connection("127.0.0.1", port) for _ in range(100)]
    slow = [await asyncio.open_connection("127.0.0.1", port) for _ in range(10)]
    dribble = request_head("GET", "/healthz", {"X-Slow": "a" * 20})
    slowest = 0.0
    closed_slow, statuses = set(), []
    try:
        for n in range(10):
            for index, (_, writer) in enumerate(slow):
                try:
                    writer.write(dribble[n : n + 1])
                    await writer.drain()
                except OSError:
                    closed_slow.add(index)
            started = time.monotonic()
            response = await client.get("/healthz")
            slowest = max(slowest, time.monotonic() - started)
            statuses.append(response.status_code)
            await asyncio.sleep(0.3)
        closed_silent = sum(reader.at_eof() for reader, _ in silent)
        return statuses, slowest, len(closed_slow), closed_silent
    finally:
        for _, writer in silent + slow:
            writer.close()
