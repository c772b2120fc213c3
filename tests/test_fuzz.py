"""The all-features bakes served as production, attacked: schemathesis and a hostile corpus.

Each bake of the live suite (SQLite with the memory broker on one worker,
PostgreSQL with Redis on two) is deployed as its README says, then given
schemathesis with all its checks against /api/openapi.json, with and
without a token, and a corpus of hostile HTTP, SSE and websocket inputs,
one after another. The test fails on any 5xx, any 1011 for a client's
mistake, any ERROR line the servers log, any answer the input should not
get, and memory growth of a worker over MEMORY_GROWTH_BOUND. It prints the
inputs tried and the answers by status, per bake.

Under CI=true schemathesis runs with a fixed seed; otherwise with a random
one, printed so that a failure can be replayed (FUZZ_SEED=<seed>).
"""

import asyncio
import gzip
import json
import os
import random
import re
import time

import httpx
import pytest
from fuzz import (
    ANSWER_SECONDS,
    PROXY_HEADERS,
    Findings,
    LogWatcher,
    chunked_body_over_cap,
    declared_body_over_cap,
    flood,
    frame_answer,
    header_hang,
    ping_flood,
    pipeline_flood,
    pipelined_then_gone,
    problem_for,
    raw_exchange,
    request_head,
    run_schemathesis,
    silent_and_slow_clients,
    workers_read_bytes,
    workers_rss,
    ws_handshake,
)
from live import deploy, publish_when_ready
from servers import IN_CI
from test_live import BAKES

SEED = int(os.environ.get("FUZZ_SEED") or (16 if IN_CI else random.randrange(2**32)))
# Examples per API operation and schemathesis run: about 500 requests a run.
MAX_EXAMPLES = 25
# What a worker may grow by over the whole corpus (resident memory).
MEMORY_GROWTH_BOUND = 64 * 1024 * 1024
# What 10 streams replaying 6 MB each, and reading none of it, may hold in all: a
# replay is read and sent in bounded pages.
REPLAY_HOLD_BOUND = 24 * 1024 * 1024
# What serving HEAD of a file may read from it: the headers need none of it.
HEAD_READ_BOUND = 8 * 1024 * 1024
BIG_FILE_BYTES = 64 * 1024 * 1024
# What one client may make a worker grow by while it sends pings, or pipelined requests,
# for FLOOD_SECONDS and reads nothing (uvicorn alone: 17 MB/s and 35 MB/s).
FLOOD_SECONDS = 3.0
FLOOD_GROWTH_BOUND = 16 * 1024 * 1024
# Statuses a request with unusable input may get; never 2xx or 5xx.
REFUSED = {400, 422}
NOT_FOUND = {400, 404, 422}

# ---- Kind 1: JSON a client can send, that no handler can use -----------------------------
NESTED = b"[" * 5000 + b"]" * 5000
UNUSABLE_VALUES = {
    "lone surrogate": b'"\\ud800"',
    "lone low surrogate": b'"a\\udc00b"',
    "NUL character": b'"a\\u0000b"',
    "nested 5,000 arrays": NESTED,
    "nested 5,000 objects": b'{"a":' * 5000 + b"1" + b"}" * 5000,
    "NaN": b"NaN",
    "Infinity": b"Infinity",
    "-Infinity": b"-Infinity",
    "float overflow 1e999": b"1e999",
    "integer of 5,000 digits": b"9" * 5000,
    "integer 2**64": b"18446744073709551616",
}
UNUSABLE_DOCUMENTS = {
    "raw NUL byte": b'{"title": "a\x00b", "content": "x"}',
    "invalid UTF-8": b'{"title": "\xff\xfe", "content": "x"}',
    "overlong UTF-8": b'{"title": "\xc0\xae", "content": "x"}',
    "not JSON": b"{not json",
    "empty": b"",
    "null": b"null",
    "array": b"[]",
    "string": b'"x"',
    "trailing garbage": b'{"title": "t", "content": "c"} x',
    "bare nesting": NESTED,
}


def article_bodies() -> dict[str, bytes]:
    bodies = {f"{name} in title": b'{"title": %s, "content": "c"}' % value
              for name, value in UNUSABLE_VALUES.items()}  # fmt: skip
    bodies |= {f"{name} in tags": b'{"title": "t", "content": "c", "tags": [%s]}' % value
               for name, value in UNUSABLE_VALUES.items()}  # fmt: skip
    return bodies | UNUSABLE_DOCUMENTS


def publish_bodies() -> dict[str, bytes]:
    bodies = {f"{name} in data": b'{"event": "a", "data": %s}' % value
              for name, value in UNUSABLE_VALUES.items()}  # fmt: skip
    bodies |= {f"{name} as event": b'{"event": %s, "data": 1}' % value
               for name, value in UNUSABLE_VALUES.items()}  # fmt: skip
    bodies |= {
        "newline in event name": b'{"event": "a\\nb", "data": 1}',
        "event name of 10,000 characters": b'{"event": "%s", "data": 1}' % (b"a" * 10000),
        "reserved event name": b'{"event": "reset", "data": 1}',
        "missing data": b'{"event": "a"}',
        "extra field": b'{"event": "a", "data": 1, "id": "1-1"}',
    }
    return bodies | UNUSABLE_DOCUMENTS


ROOM_FRAMES = {
    **{
        f"{name} as message": f'{{"message": {value.decode()}}}'
        for name, value in UNUSABLE_VALUES.items()
    },
    "not JSON": "not json",
    "empty frame": "",
    "null": "null",
    "array": "[]",
    "no message": "{}",
    "empty message": '{"message": ""}',
    "blank message": '{"message": "   "}',
    "message of 2,001 characters": json.dumps({"message": "x" * 2001}),
    "message not a string": '{"message": 5}',
    "extra field": '{"message": "x", "user": "admin"}',
    "bare nesting": NESTED.decode(),
}

# ---- Kind 1: query strings, ids, headers -------------------------------------------------
PAGES = [
    "9223372036854775807", "9223372036854775808", "99999999999999999999", "-1", "0",
    "abc", "1e3", "", "%00", "%ff", "1&page=2", "1" * 5000,
]  # fmt: skip
IDS = [
    "99999999999999999999", "9223372036854775808", "9223372036854775807", "abc", "-1",
    "1.5", "%00", "%ff", "%EF%BC%91", "0x10", "1" * 5000,
]  # fmt: skip
BAD_TOKENS = [
    "Bearer " + "x" * 10000,
    "Bearer",
    "Bearer a b",
    "Basic Zm9vOmJhcg==",
    "Bearer \xff\xfe",
]
MALFORMED_REQUESTS = {
    "no Host": b"GET /healthz HTTP/1.1\r\n\r\n",
    "NUL in the path": b"GET /\x00 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "request line of 100 KB": b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "header without a colon": b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nBroken\r\n\r\n",
    "negative Content-Length": b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -1\r\n\r\n",
    "two Content-Lengths": (
        b"POST /events/publish/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\n"
        b"Content-Length: 2\r\n\r\nab"
    ),
    "Content-Length and chunked": (
        b"POST /events/publish/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "bad chunk size": (
        b"POST /events/publish/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Transfer-Encoding: chunked\r\n\r\nzz\r\n"
    ),
    "unknown method": b"FOO /api/articles/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "TRACE": b"TRACE / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "HTTP/1.0 without Host": b"GET /healthz HTTP/1.0\r\n\r\n",
    "foreign Host": b"GET /api/articles/ HTTP/1.1\r\nHost: evil.example\r\n\r\n",
    "Host with a bad port": b"GET / HTTP/1.1\r\nHost: 127.0.0.1:99999\r\n\r\n",
    "non-ASCII Host": b"GET / HTTP/1.1\r\nHost: \xff\xfe\r\n\r\n",
}
ODD_PATHS = [
    "/%ff", "/%00", "/files/%00", "/files/%ff", "/files/" + "a" * 5000, "/static/%2e%2e/x",
    "/admin/%ff/", "//", "/api//articles/", "/api/nowhere", "/api/articles/%ff/",
    "/events/?last_event_id=%ff", "/api/articles/?" + "&".join(f"f{n}=1" for n in range(1500)),
]  # fmt: skip

# Content types whose charset Django cannot decode a body with (LookupError, UnicodeError,
# or its own BadRequest for a form that is not UTF-8): 400, never 500.
UNUSABLE_CHARSETS = [
    "application/x-www-form-urlencoded; charset=iso-8859-1",
    "application/x-www-form-urlencoded; charset=utf-16",
    "multipart/form-data; boundary=XX; charset=rot13",
    "multipart/form-data; boundary=XX; charset=utf-8; charset=hex",
    "multipart/form-data; boundary=XX; charset=idna",
    "text/plain; charset=uu_codec",
]
CHARSET_PATHS = [
    "/", "/healthz", "/readyz", "/admin/login/", "/files/hello.txt", "/api/articles/",
    "/api/dashboard/", "/events/", "/events/publish/",
]  # fmt: skip
MULTIPART_BODY = b'--XX\r\nContent-Disposition: form-data; name="a"\r\n\r\nb\r\n--XX--\r\n'
# A CSRF cookie of the right length, and a same-origin Referer (request_head's Host).
CSRF_COOKIE = "csrftoken=" + "a" * 32
REFERER = "https://127.0.0.1/"

# ---- Kinds 2 and 3: SSE ---------------------------------------------------------------
LAST_EVENT_IDS = [
    "garbage", "99999999999999999999-0", "18446744073709551616-0", "0-99999999999999999999",
    "18446744073709551615-18446744073709551615", "-1", "0-0", "0", "1e5-0", "\u0661-\u0660",
    "1-" + "9" * 5000, "a" * 10000,
]  # fmt: skip

# ---- Kind 4: conditional requests on /files/ -------------------------------------------
LONG_AGO = "Mon, 01 Jan 1990 00:00:00 GMT"
FAR_AHEAD = "Fri, 01 Jan 2100 00:00:00 GMT"


@pytest.fixture(params=list(BAKES))
def deployment(request, tmp_path, environments):
    with deploy(tmp_path, environments, **BAKES[request.param]) as deployed:
        yield deployed


def test_hostile_inputs_get_client_errors(deployment, tmp_path):
    watcher = LogWatcher(deployment.server.log)
    findings = Findings(watcher)
    try:
        rss = asyncio.run(attack(deployment, findings, tmp_path))
        findings.charge_logs(0, "after the last input")
    finally:
        watcher.close()
    print(f"\nschemathesis seed {SEED}; answers by status:\n{findings.table()}")
    print(f"inputs tried: {sum(findings.tried.values())}")
    for pid, (before, after) in rss.items():
        if not after:
            findings.problems.append(f"memory | worker {pid} is gone: it died during the corpus")
            continue
        growth = after - before
        print(f"worker {pid}: {before / 2**20:.0f} MiB -> {after / 2**20:.0f} MiB")
        if growth > MEMORY_GROWTH_BOUND:
            findings.problems.append(
                f"memory | worker {pid} grew by {growth / 2**20:.0f} MiB "
                f"(bound {MEMORY_GROWTH_BOUND / 2**20:.0f} MiB)"
            )
    report = "\n".join(findings.problems)
    assert not findings.problems, f"{len(findings.problems)} problems:\n{report}"


async def attack(deployment, findings: Findings, tmp_path) -> dict:
    """Every input, one after another; the workers' memory before and after."""
    async with httpx.AsyncClient(
        base_url=deployment.url, timeout=ANSWER_SECONDS * 2, headers=PROXY_HEADERS
    ) as client:
        setup = await prepare(client, deployment)
        before = workers_rss(deployment)
        phases = {
            "schemathesis": lambda: schemathesis(deployment, findings, tmp_path),
            "JSON bodies": lambda: json_bodies(client, deployment, findings, setup),
            "queries, ids, headers": lambda: queries_ids_and_headers(
                client, deployment, findings, setup
            ),
            "bodies over the cap": lambda: bodies_over_the_cap(deployment, findings, setup),
            "HEAD": lambda: head_everywhere(client, deployment, findings, setup),
            "conditional requests": lambda: conditional_files(client, findings),
            "contract": lambda: contract(client, deployment, findings),
            "event streams": lambda: event_streams(client, deployment, findings),
            "rooms": lambda: rooms(deployment, findings),
            "connections": lambda: connections(client, deployment, findings),
        }
        for phase, run in phases.items():
            started = time.monotonic()
            await run()
            if phase == "schemathesis":
                setup["article"] = await create_article(client, deployment)
            print(f"{phase}: {time.monotonic() - started:.1f}s")
        # Let the workers finish with what the inputs left behind.
        await asyncio.sleep(1)
        after = workers_rss(deployment)
    return {pid: (before[pid], after.get(pid, 0)) for pid in before}


async def prepare(client, deployment) -> dict:
    """Files, a static asset, and a warm server."""
    (deployment.media / "hello.txt").write_text("hello, fuzz\n")
    with (deployment.media / "big.bin").open("wb") as big:
        big.truncate(BIG_FILE_BYTES)  # sparse: costs no disk
    home = await client.get("/")
    asset = re.findall(r'(?:src|href)="(/static/[^"]+)"', home.text)[0]
    for _ in range(3):  # every route once, so that lazy imports count before the baseline
        for path in ("/healthz", "/readyz", "/api/articles/", "/api/articles/stats/", asset):
            await client.get(path)
    return {"asset": asset}


async def create_article(client, deployment) -> int:
    """An article of the token's user (after schemathesis, which deletes what it can)."""
    created = await client.post(
        "/api/articles/",
        json={"title": "Fuzz", "content": "target", "tags": ["fuzz"], "published": True},
        headers=deployment.auth,
    )
    assert created.status_code == 201, created.text
    return created.json()["id"]


async def schemathesis(deployment, findings: Findings, tmp_path) -> None:
    for source, headers in (
        ("schemathesis", PROXY_HEADERS),
        ("schemathesis+token", {**PROXY_HEADERS, **deployment.auth}),
    ):
        run = await asyncio.to_thread(
            run_schemathesis,
            deployment.url,
            headers,
            SEED,
            MAX_EXAMPLES,
            tmp_path / f"{source}.ndjson",
        )
        findings.tried[source] += run.statuses.total()
        for status, count in run.statuses.items():
            findings.answers[source, status] += count
        for failure in run.failures:
            findings.problems.append(f"kind 4 | {source} | {failure}")
        if run.exit_code not in (0, 1) or not run.statuses:  # 1: failures, listed above
            findings.problems.append(
                f"kind 4 | {source} | exited {run.exit_code}:\n{run.output_tail}"
            )
        findings.charge_logs(4, source)


async def json_bodies(client, deployment, findings: Findings, setup) -> None:
    """Kind 1: unusable JSON to every entry point that reads JSON over HTTP."""
    json_type = {**deployment.auth, "Content-Type": "application/json"}
    own = f"/api/articles/{setup['article']}/"
    targets = [
        ("POST", "/api/articles/", article_bodies()),
        ("PATCH", own, article_bodies()),
        ("POST", "/events/publish/", publish_bodies()),
    ]
    for method, path, bodies in targets:
        for name, body in bodies.items():
            response = await client.request(method, path, content=body, headers=json_type)
            expected = {202, 400} if name == "NUL character in data" else REFUSED
            problem = problem_for(response.status_code, expected) or json_problem(response)
            findings.record(1, f"{method} {path} {name}", response.status_code, problem)
    # No token: refused before the body is read.
    for path in ("/api/articles/", "/events/publish/"):
        response = await client.post(
            path, content=b'{"event": "a", "data": "\\ud800"}', headers=PROXY_HEADERS
        )
        problem = problem_for(response.status_code, {401})
        findings.record(1, f"POST {path} lone surrogate, no token", response.status_code, problem)


def json_problem(response: httpx.Response) -> str | None:
    """An error answer of the API or of publish that is not JSON."""
    if response.status_code < 400 or response.status_code == 405:
        return None
    content_type = response.headers.get("Content-Type", "")
    if not content_type.startswith("application/json"):
        return f"answered {response.status_code} as {content_type or 'no content type'}"
    return None


async def queries_ids_and_headers(client, deployment, findings: Findings, setup) -> None:
    """Kind 1: integers out of range, non-integer ids, hostile headers, malformed requests."""
    for page in PAGES:
        for parameter in ("page", "page_size"):
            path = f"/api/articles/?{parameter}={page}"
            response = await client.get(path)
            problem = problem_for(response.status_code, {200, *NOT_FOUND}) or json_problem(response)
            findings.record(1, f"GET {path[:80]}", response.status_code, problem)
    for article_id in IDS:
        path = f"/api/articles/{article_id}/"
        for method in ("GET", "PATCH", "DELETE"):
            headers = deployment.auth if method != "GET" else {}
            body = b'{"title": "t"}' if method == "PATCH" else None
            response = await client.request(
                method, path, content=body, headers={**headers, "Content-Type": "application/json"}
            )
            expected = NOT_FOUND | ({405} if method != "GET" else set())
            problem = problem_for(response.status_code, expected) or json_problem(response)
            findings.record(1, f"{method} {path[:80]}", response.status_code, problem)
    port = deployment.server.port
    for token in BAD_TOKENS:
        for method, path in (
            ("POST", "/api/articles/"),
            ("POST", "/events/publish/"),
            ("GET", "/auth/whoami/"),
        ):
            answer = await raw_exchange(
                port,
                request_head(method, path, {"Authorization": token, "Content-Length": "0"}),
            )
            problem = None if answer.status in {400, 401, 403, 431} else f"got {answer.label}"
            findings.record(
                1, f"{method} {path} Authorization {token[:20]!r}", answer.label, problem
            )
    for name, request in MALFORMED_REQUESTS.items():
        answer = await raw_exchange(port, request)
        # A request the server cannot parse may be answered 4xx or just closed; some are
        # legal (HTTP/1.0 has no Host) and get a 2xx.
        ok = answer.closed or (answer.status is not None and answer.status < 500)
        findings.record(1, f"malformed request: {name}", answer.label, None if ok else answer.label)
    for path in ODD_PATHS:
        answer = await raw_exchange(port, request_head("GET", path, {"Connection": "close"}))
        ok = (answer.status is not None and answer.status < 500) or answer.closed
        findings.record(1, f"GET {path[:60]}", answer.label, None if ok else f"got {answer.label}")
    for name, headers in {
        "huge cookie": {"Cookie": "sessionid=" + "a" * 7000},
        "garbage cookie": {"Cookie": "sessionid=\xff; csrftoken=\x01"},
        "long X-Request-ID": {"X-Request-ID": "a" * 10000},
        "odd X-Request-ID": {"X-Request-ID": "a\xffb<script>"},
        "UTF-16 charset": {"Content-Type": "application/json; charset=utf-16"},
        "multipart without boundary": {"Content-Type": "multipart/form-data; boundary="},
    }.items():
        body = b'{"title": "t", "content": "c"}'
        request = request_head(
            "POST",
            "/api/articles/",
            {
                "Authorization": deployment.auth["Authorization"],
                "Content-Type": "application/json",
                **headers,
                "Content-Length": str(len(body)),
            },
        )
        answer = await raw_exchange(port, request + body)
        ok = answer.status is not None and answer.status < 500
        findings.record(
            1, f"POST /api/articles/ {name}", answer.label, None if ok else answer.label
        )
    for content_type in UNUSABLE_CHARSETS:
        for path in CHARSET_PATHS:
            for method in ("POST", "GET"):
                body = MULTIPART_BODY if method == "POST" else b""
                # The Referer the CSRF check wants over HTTPS: it goes on to read the body.
                head = {"Content-Type": content_type, "Cookie": CSRF_COOKIE, "Referer": REFERER}
                head["Content-Length"] = str(len(body))
                answer = await raw_exchange(port, request_head(method, path, head) + body)
                problem = None if answer.status == 400 else f"got {answer.label}, not 400"
                findings.record(
                    1, f"{method} {path} Content-Type: {content_type}", answer.label, problem
                )
    # Many form fields: Django refuses them (TooManyFieldsSent), a client's mistake.
    form = "&".join(f"f{n}=1" for n in range(1500)).encode()
    answer = await raw_exchange(
        port,
        request_head(
            "POST",
            "/admin/login/",
            {
                "Content-Type": "application/x-www-form-urlencoded",
                "Content-Length": str(len(form)),
            },
        )
        + form,
    )
    ok = answer.status is not None and answer.status < 500
    findings.record(1, "POST /admin/login/ 1,500 form fields", answer.label, None if ok else "5xx")


async def bodies_over_the_cap(deployment, findings: Findings, setup) -> None:
    """Kind 2: bodies over the cap are refused with 413 JSON, without reading them."""
    port = deployment.server.port
    token = deployment.auth
    routes = [
        ("POST", "/api/articles/", {}),
        ("POST", "/api/articles/", token),
        ("PATCH", f"/api/articles/{setup['article']}/", token),
        ("POST", "/events/publish/", {}),
        ("POST", "/events/publish/", token),
        ("POST", "/admin/login/", {}),
        ("POST", "/", {}),
        ("POST", "/healthz", {}),
        ("PUT", "/files/hello.txt", {}),
    ]
    # All at once: a server that waits for the rest of each body keeps every one waiting.
    declared = await asyncio.gather(
        *(declared_body_over_cap(port, method, path, headers) for method, path, headers in routes)
    )
    for (method, path, headers), answer in zip(routes, declared, strict=True):
        who = "token" if headers else "anonymous"
        problem = None
        if answer.status is None:
            problem = f"{answer.label} within {ANSWER_SECONDS:g}s: waiting for the whole body"
        elif answer.status != 413 or "json" not in answer.headers.get("content-type", ""):
            problem = f"answered {answer.status} {answer.headers.get('content-type')}, not 413 JSON"
        findings.record(2, f"{method} {path} declared 300 MB, {who}", answer.label, problem)
    for method, path, headers in routes:
        who = "token" if headers else "anonymous"
        answer, sent, whole = await chunked_body_over_cap(port, method, path, headers)
        problem = None
        if whole:
            problem = (
                f"read the whole {sent >> 20} MiB chunked body before answering {answer.label}"
            )
        elif answer.closed:
            # Cut off: the server closed with the rest of the body unread, and the kernel's
            # reset may overtake its 413. Nothing beyond the cap was read either way.
            problem = None
        elif answer.status != 413:
            problem = f"answered {answer.label} after {sent >> 20} MiB, not 413"
        findings.record(2, f"{method} {path} chunked 32 MiB, {who}", answer.label, problem)


async def head_everywhere(client, deployment, findings: Findings, setup) -> None:
    """Kind 2: HEAD answers like GET on every GET route, and reads no streaming body."""
    paths = [
        "/", "/healthz", "/readyz", "/auth/whoami/", "/api/articles/", "/api/articles/stats/",
        f"/api/articles/{setup['article']}/", "/api/openapi.json", "/api/docs",
        "/api/dashboard/", "/events/", "/files/hello.txt", setup["asset"], "/admin/login/",
    ]  # fmt: skip
    for path in paths:
        async with client.stream("GET", path) as get:
            expected = get.status_code
        try:
            head = await client.head(path)
        except httpx.TimeoutException:
            findings.record(2, f"HEAD {path}", "no answer", "no answer: HEAD streamed a body")
            continue
        problem = problem_for(head.status_code, {expected})
        if head.content:
            problem = f"HEAD sent {len(head.content)} bytes of body"
        findings.record(2, f"HEAD {path}", head.status_code, problem)
    # HEAD of a large file on a kept-alive connection reads none of it.
    before = workers_read_bytes(deployment)
    head = await client.head("/files/big.bin")
    await asyncio.sleep(1)  # a server that reads the body anyway does it now
    read = workers_read_bytes(deployment) - before
    problem = problem_for(head.status_code, {200})
    if read > HEAD_READ_BOUND:
        problem = f"the server read {read >> 20} MiB of the {BIG_FILE_BYTES >> 20} MiB file"
    findings.record(2, "HEAD /files/big.bin (64 MiB), kept alive", head.status_code, problem)


async def conditional_files(client, findings: Findings) -> None:
    """Kind 4: /files/ honours every conditional header, as Django's helpers do."""
    first = await client.get("/files/hello.txt")
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    cases = {
        "If-None-Match: its ETag": ({"If-None-Match": etag}, 304),
        "If-None-Match: weak ETag": ({"If-None-Match": "W/" + etag.removeprefix("W/")}, 304),
        "If-None-Match: *": ({"If-None-Match": "*"}, 304),
        "If-None-Match: another": ({"If-None-Match": '"other"'}, 200),
        "If-Modified-Since: Last-Modified": ({"If-Modified-Since": modified}, 304),
        "If-Modified-Since: far ahead": ({"If-Modified-Since": FAR_AHEAD}, 304),
        "If-Modified-Since: long ago": ({"If-Modified-Since": LONG_AGO}, 200),
        "If-Modified-Since: garbage": ({"If-Modified-Since": "yesterday"}, 200),
        "If-Match: another": ({"If-Match": '"other"'}, 412),
        "If-Match: *": ({"If-Match": "*"}, 200),
        "If-Match: its ETag": ({"If-Match": etag}, 200),
        "If-Unmodified-Since: long ago": ({"If-Unmodified-Since": LONG_AGO}, 412),
        "If-Unmodified-Since: far ahead": ({"If-Unmodified-Since": FAR_AHEAD}, 200),
        "If-Unmodified-Since: garbage": ({"If-Unmodified-Since": "never"}, 200),
        "Range: garbage": ({"Range": "bytes=garbage"}, 200),
    }
    for name, (headers, status) in cases.items():
        for method in ("GET", "HEAD"):
            response = await client.request(method, "/files/hello.txt", headers=headers)
            problem = problem_for(response.status_code, {status})
            findings.record(4, f"{method} /files/hello.txt {name}", response.status_code, problem)
    response = await client.get(
        "/files/hello.txt", headers={"Range": "bytes=99999999999999999999-"}
    )
    problem = problem_for(response.status_code, {200, 206, 416})
    findings.record(4, "GET /files/hello.txt huge Range", response.status_code, problem)


async def contract(client, deployment, findings: Findings) -> None:
    """Kind 4: what a client of the API or /files/ relies on, beyond the OpenAPI document."""
    (deployment.media / "notes.txt.gz").write_bytes(gzip.compress(b"notes\n"))
    (deployment.media / "backup.tar.xz").write_bytes(b"\xfd7zXZ\x00")
    for name, content_type in (
        ("notes.txt.gz", "application/gzip"),
        ("backup.tar.xz", "application/x-xz"),
    ):
        response = await client.get(f"/files/{name}")
        problem = problem_for(response.status_code, {200})
        if "Content-Encoding" in response.headers:
            problem = f"sent Content-Encoding: {response.headers['Content-Encoding']}"
        elif response.headers.get("Content-Type") != content_type:
            problem = f"sent Content-Type: {response.headers.get('Content-Type')}"
        findings.record(4, f"GET /files/{name}", response.status_code, problem)

    as_json = {"Accept": "application/json"}
    for method, path, expected in (
        ("POST", "/api/dashboard/", {403, 405}),  # the CSRF check, as JSON
        *((m, p, {405}) for m in ("POST", "DELETE", "OPTIONS", "TRACE")
          for p in ("/api/openapi.json", "/api/docs")),
        ("POST", "/api/articles", {308}),  # a missing slash: the method is kept
        ("DELETE", "/api/articles/1", {308}),
    ):  # fmt: skip
        response = await client.request(method, path, headers=as_json)
        problem = problem_for(response.status_code, expected) or json_problem(response)
        if response.status_code == 308 and response.headers.get("Location") != path + "/":
            problem = f"redirected to {response.headers.get('Location')}"
        if response.status_code == 405 and response.headers.get("Allow") != "GET, HEAD":
            problem = f"405 with Allow: {response.headers.get('Allow')}"
        findings.record(4, f"{method} {path}", response.status_code, problem)

    # 1*SP after "Bearer" (RFC 9110), and a tag whose lowercase is longer than what was sent.
    spaced = {"Authorization": deployment.auth["Authorization"].replace(" ", "  ", 1)}
    created = await client.post(
        "/api/articles/", json={"title": "Spaced", "tags": ["İ" * 50]}, headers=spaced
    )
    problem = problem_for(created.status_code, {201})
    findings.record(
        4, 'POST /api/articles/ "Bearer  <token>", tag "İ" x 50', created.status_code, problem
    )
    if created.status_code == 201:
        deleted = await client.delete(f"/api/articles/{created.json()['id']}/", headers=spaced)
        problem = problem_for(deleted.status_code, {204})
        findings.record(
            4, 'DELETE /api/articles/<id>/ "Bearer  <token>"', deleted.status_code, problem
        )


async def sse_opening(client, headers=None, params=None) -> tuple[int, str]:
    """The status and the first frames of GET /events/ (at most ANSWER_SECONDS of it)."""
    text = ""
    async with client.stream("GET", "/events/", headers=headers, params=params) as response:
        if response.status_code != 200:
            return response.status_code, ""
        try:
            async with asyncio.timeout(ANSWER_SECONDS):
                async for chunk in response.aiter_text():
                    text += chunk
                    if "\n\n" in text:
                        break
        except TimeoutError:
            pass
    return response.status_code, text


async def event_streams(client, deployment, findings: Findings) -> None:
    """Kinds 1 to 3: Last-Event-ID garbage, and replays that cannot hold a worker's memory."""
    for last_id in LAST_EVENT_IDS:
        for how in ("header", "query"):
            if how == "header":
                status, text = await sse_opening(
                    client, headers={"Last-Event-ID": last_id.encode()}
                )
            else:
                status, text = await sse_opening(client, params={"last_event_id": last_id})
            problem = problem_for(status, {200})
            if status == 200 and "unavailable" in text:
                problem = "answered as a broker outage"
            elif status == 200 and "\nid: " not in f"\n{text}":
                problem = f"the stream opened with no id: {text[:80]!r}"
            findings.record(
                3, f"GET /events/ Last-Event-ID ({how}) {last_id[:30]!r}", status, problem
            )

    # The oldest id: a replay of the whole retention, to streams that read nothing.
    big = "x" * 60_000
    first = await publish_when_ready(client, deployment, "fuzz", big)
    for n in range(99):
        await publish_when_ready(client, deployment, "fuzz", f"{n}{big}")
    before = sum(workers_rss(deployment).values())
    streams = []
    try:
        for _ in range(10):
            stream = client.stream("GET", "/events/", headers={"Last-Event-ID": first})
            response = await stream.__aenter__()
            streams.append(stream)
            assert response.status_code == 200
        await asyncio.sleep(2)  # each worker now holds what it could not send yet
        held = sum(workers_rss(deployment).values()) - before
    finally:
        for stream in streams:
            await stream.__aexit__(None, None, None)
    problem = None
    if held > REPLAY_HOLD_BOUND:
        problem = f"10 replays held {held >> 20} MiB (bound {REPLAY_HOLD_BOUND >> 20} MiB)"
    findings.record(2, "10 x GET /events/ from the oldest of 100 events of 60 KB", 200, problem)
    print(f"10 unread replays of 6 MB: the workers grew by {held / 2**20:.1f} MiB")


async def rooms(deployment, findings: Findings) -> None:
    """Kinds 1 to 3: bad frames, floods, big frames, unknown paths, foreign origins."""
    for n, (name, frame) in enumerate(ROOM_FRAMES.items()):
        answer, problem = await frame_answer(deployment, f"fuzz{n}", frame)
        findings.record(1, f"room frame: {name}", answer, problem, source="websocket")
    for name, frame in {
        "binary frame": b"\x00\x01\x02",
        "binary JSON": b'{"message": "hi"}',
    }.items():
        answer, problem = await frame_answer(deployment, "fuzzbin", frame)
        findings.record(1, f"room frame: {name}", answer, problem, source="websocket")
    answer, problem = await frame_answer(deployment, "fuzzutf", b'{"message": "\xff"}', text=True)
    findings.record(1, "room frame: invalid UTF-8 text", answer, problem, source="websocket")

    answer, problem = await frame_answer(
        deployment, "fuzzbig", json.dumps({"message": "x" * 2**20})
    )
    if answer != "ws close 1009":
        problem = f"a 1 MiB frame was read whole ({answer}): the frame size is not limited"
    findings.record(2, "room frame of 1 MiB", answer, problem, source="websocket")

    answer, problem = await flood(deployment, "fuzzflood", 60)
    await asyncio.sleep(0.5)  # frames after the close are handled (or not) now
    findings.record(1, "room flood of 60 frames", answer, problem, source="websocket")

    for path in (
        "/ws/", "/ws/unknown/", "/ws/rooms/", "/ws/rooms/a%20b/", f"/ws/rooms/{'a' * 65}/",
        "/ws/rooms/%00/", "/ws/rooms/%ff/", "/ws/rooms/a/extra/", "/events/", "/api/articles/",
    ):  # fmt: skip
        status = await ws_handshake(deployment, path)
        problem = None if status in {"403", "404", "400"} else f"handshake got {status}"
        findings.record(1, f"websocket {path[:40]}", status, problem, source="websocket")
    for origin in (
        "https://evil.example", "null", "http://127.0.0.1.evil.example", "x" * 5000,
        "http://[", "http://[::1", "http://a]", "http://127.0.0.1:99999", "http://127.0.0.1:x",
    ):  # fmt: skip
        status = await ws_handshake(deployment, "/ws/rooms/fuzz/", origin=origin)
        problem = None if status == "403" else f"handshake got {status}"
        findings.record(1, f"websocket Origin {origin[:30]}", status, problem, source="websocket")
    for token in ("Bearer garbage", "Bearer " + "x" * 43, "Basic Zm9v", "Bearer " + "y" * 5000):
        status = await ws_handshake(
            deployment, "/ws/rooms/fuzz/", additional_headers={"Authorization": token}
        )
        problem = None if status in {"101", "401", "403"} else f"handshake got {status}"
        findings.record(
            1, f"websocket Authorization {token[:20]}", status, problem, source="websocket"
        )

    port = deployment.server.port
    answer, grown = await peak_growth(
        deployment, ping_flood(port, "/ws/rooms/fuzzping/", deployment.url, FLOOD_SECONDS)
    )
    problem = None if answer == "101" else f"handshake got {answer}"
    if grown > FLOOD_GROWTH_BOUND:
        problem = f"the workers grew by {grown >> 20} MiB (bound {FLOOD_GROWTH_BOUND >> 20} MiB)"
    findings.record(
        2, f"{FLOOD_SECONDS:g} s of pings, none read", answer, problem, source="websocket"
    )
    print(f"{FLOOD_SECONDS:g} s of unread pings: the workers grew by {grown / 2**20:.1f} MiB")

    for size in (16 * 1024, 64 * 1024):
        upgrade = request_head(
            "GET",
            "/ws/rooms/fuzz/",
            {
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                "Sec-WebSocket-Version": "13",
                "Origin": deployment.url,
                "X-Big": "a" * size,
            },
        )
        answer = await header_hang(port, upgrade)
        problem = "the upgrade hangs open with no answer" if answer.label == "no answer" else None
        if answer.status and answer.status >= 500:
            problem = f"answered {answer.status}"
        findings.record(
            2, f"websocket upgrade with a {size >> 10} KB header", answer.label, problem,
            source="websocket",
        )  # fmt: skip


async def peak_growth(deployment, flood) -> tuple:
    """Run the coroutine `flood`, sampling the workers' memory meanwhile: (its result, the
    most they grew by). Sampled during: what a flood holds is freed when it hangs up."""
    before = sum(workers_rss(deployment).values())
    task = asyncio.create_task(flood)
    peak = 0
    while not task.done():
        await asyncio.wait({task}, timeout=0.2)
        peak = max(peak, sum(workers_rss(deployment).values()) - before)
    return task.result(), peak


async def connections(client, deployment, findings: Findings) -> None:
    """Kind 2: silent and slow clients do not keep others from being served."""
    statuses, slowest, closed_slow, closed_silent = await silent_and_slow_clients(
        deployment, client
    )
    problem = None
    if set(statuses) != {200}:
        problem = f"/healthz answered {sorted(set(statuses))} beside 110 silent or slow clients"
    elif slowest > ANSWER_SECONDS:
        problem = f"/healthz took {slowest:.1f}s beside 110 silent or slow clients"
    findings.record(2, "100 silent + 10 slow-header clients", 200, problem)
    print(
        f"beside 100 silent and 10 slow-header clients /healthz took at worst {slowest:.2f}s; "
        f"the server closed {closed_slow} slow and {closed_silent} silent ones within 3 s"
    )
    port = deployment.server.port
    for path in ("/api/articles/", "/readyz", "/healthz", "/static/ninja/swagger-ui.css"):
        await pipelined_then_gone(port, path, 500)
        await pipelined_then_gone(port, path, 50)
        await asyncio.sleep(0.3)  # what the server logs about it, it logs now
        findings.record(1, f"pipelined GET {path} x 500 and x 50, then reset", "sent")
    taken, grown = await peak_growth(
        deployment, pipeline_flood(port, "/api/articles/", FLOOD_SECONDS)
    )
    problem = None
    if grown > FLOOD_GROWTH_BOUND:
        problem = f"the workers grew by {grown >> 20} MiB (bound {FLOOD_GROWTH_BOUND >> 20} MiB)"
    findings.record(2, f"{FLOOD_SECONDS:g} s of pipelined requests, none read", "sent", problem)
    print(
        f"{FLOOD_SECONDS:g} s of unread pipelined requests: the server took "
        f"{taken / 2**20:.1f} MiB of them and grew by {grown / 2**20:.1f} MiB"
    )
    answers = await asyncio.gather(*(client.get("/api/dashboard/") for _ in range(20)))
    for response in answers:
        problem = problem_for(response.status_code, {200, 429, 503})
        findings.record(2, "20 concurrent GET /api/dashboard/", response.status_code, problem)
