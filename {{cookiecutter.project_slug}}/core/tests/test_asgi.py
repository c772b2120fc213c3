"""core.asgi.ASGIHandler: no thread for async-only requests, Django's behaviour otherwise;
request bodies under their cap (core/limits.py), HEAD without its body, a client that
left never an error."""

import asyncio
import contextlib
import json
import logging
import socket
import tempfile
import threading
from functools import partial
from unittest import mock

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core import signals
from django.core.handlers.asgi import ASGIHandler as DjangoASGIHandler
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created
from django.http import JsonResponse, StreamingHttpResponse
from django.test import override_settings
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from config.urls import urlpatterns as project_urlpatterns
from core import asgi, limits
from core.asgi import CLOSED_TRANSPORT, ASGIHandler, IdleThreads, SyncThreads
from core.limits import max_body
from core.testing import asgi_request, count_thread_hops, http_scope
from core.tests import urls


@contextlib.contextmanager
def threads_started():
    """The names of the threads started inside the block.

    Build handlers before it: ServeStatic stats its files on threads at start-up.
    """
    started = []
    original = threading.Thread.start

    def start(thread):
        started.append(thread.name)
        return original(thread)

    with mock.patch.object(threading.Thread, "start", start):
        yield started


@pytest.mark.project_classes
async def test_an_async_request_starts_no_thread_and_pays_no_hop():
    handler = ASGIHandler()
    with threads_started() as started, count_thread_hops() as hops:
        for _ in range(20):
            response = await asgi_request(handler, path="/healthz")
            assert response.status == 200
    assert hops == []
    assert started == []


async def test_djangos_handler_starts_two_threads_per_request():
    """What the handler saves: a request thread and a thread that joins it."""
    handler = DjangoASGIHandler()
    with threads_started() as started:
        for _ in range(20):
            await asgi_request(handler, path="/healthz")
    assert len(started) >= 20 * 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.urls("core.tests.urls")
async def test_connections_are_closed_in_the_thread_that_used_them():
    closed_in = []
    original = BaseDatabaseWrapper.close_if_unusable_or_obsolete

    def spy(connection):
        closed_in.append(threading.current_thread().name)
        return original(connection)

    with mock.patch.object(BaseDatabaseWrapper, "close_if_unusable_or_obsolete", spy):
        response = await asgi_request(ASGIHandler(), path="/tests/count-users/")
    assert response.status == 200
    # request_finished ran in the request's thread, where the query ran.
    assert closed_in
    assert {name.split("_")[0] for name in closed_in} == {"request"}


@pytest.mark.urls("core.tests.urls")
async def test_a_sync_view_runs_on_the_request_thread_and_finishes_there():
    finished_in = []

    def receiver(**kwargs):
        finished_in.append(threading.current_thread().name)

    handler = ASGIHandler()
    with threads_started() as started:
        response = await asgi_request(handler, path="/tests/sync/")
    assert response.status == 200
    assert [name.split("_")[0] for name in started] == ["request"]
    signals.request_finished.connect(receiver)
    try:
        await asgi_request(ASGIHandler(), path="/tests/sync/")
    finally:
        signals.request_finished.disconnect(receiver)
    assert [name.split("_")[0] for name in finished_in] == ["request"]


async def test_a_receiver_of_the_projects_own_runs_off_the_loop():
    """A sync receiver may do I/O: it never runs on the event loop."""
    ran_in = []

    def receiver(**kwargs):
        ran_in.append(threading.current_thread() is threading.main_thread())

    for signal in (signals.request_started, signals.request_finished):
        signal.connect(receiver)
    try:
        response = await asgi_request(ASGIHandler(), path="/healthz")
    finally:
        for signal in (signals.request_started, signals.request_finished):
            signal.disconnect(receiver)
    assert response.status == 200
    assert ran_in == [False, False]


async def test_an_async_receiver_is_awaited():
    calls = []

    async def receiver(sender, **kwargs):
        calls.append(sender)

    signals.request_finished.connect(receiver)
    try:
        await asgi_request(ASGIHandler(), path="/healthz")
    finally:
        signals.request_finished.disconnect(receiver)
    assert calls == [ASGIHandler]


async def test_other_protocols_are_refused():
    with pytest.raises(ValueError, match="only handle ASGI/HTTP"):
        await ASGIHandler()({"type": "websocket"}, None, None)


@override_settings(DEBUG=False)
async def test_responses_match_djangos_handler():
    for url in ("/healthz", "/", "/nowhere/"):
        ours = await asgi_request(ASGIHandler(), path=url)
        django = await asgi_request(DjangoASGIHandler(), path=url)
        assert (ours.status, ours.body) == (django.status, django.body)


@pytest.mark.urls("core.tests.urls")
async def test_sync_requests_reuse_an_idle_thread():
    handler = ASGIHandler()
    with threads_started() as started:
        for _ in range(20):
            assert (await asgi_request(handler, path="/tests/sync/")).status == 200
    assert len(started) == 1


@pytest.mark.urls("core.tests.urls")
async def test_concurrent_requests_share_the_first_thread_while_it_keeps_up(settings, monkeypatch):
    settings.REQUEST_THREADS = 8
    # Slow only after seconds: a loaded machine can hold a thread off the CPU
    # past the default 10 ms (core/tests/test_sync_threads.py tests the spill).
    monkeypatch.setattr(asgi, "SyncThreads", partial(SyncThreads, spill_after=5, query_spill=5))
    handler = ASGIHandler()
    first, second = await asyncio.gather(
        *(asgi_request(handler, path="/tests/thread-ids/") for _ in range(2))
    )
    # Two requests, two sync calls each, one thread (core.asgi.SyncThreads).
    assert len({*json.loads(first.body), *json.loads(second.body)}) == 1


@pytest.mark.urls("core.tests.urls")
async def test_a_slow_sync_call_does_not_hold_up_other_requests(settings):
    settings.REQUEST_THREADS = 8
    urls.WAITING.clear()
    urls.RELEASE.clear()
    handler = ASGIHandler()
    slow = asyncio.ensure_future(asgi_request(handler, path="/tests/wait-for-release/"))
    try:
        assert await asyncio.to_thread(urls.WAITING.wait, 5)
        # The first thread is held: the next request's call runs on another.
        fast = await asyncio.wait_for(asgi_request(handler, path="/tests/sync/"), 5)
        assert fast.status == 200
        assert not slow.done()
    finally:
        urls.RELEASE.set()
    assert (await slow).status == 200


@pytest.mark.urls("core.tests.urls")
async def test_with_request_threads_0_concurrent_requests_never_share_a_thread(settings):
    settings.REQUEST_THREADS = 0
    handler = ASGIHandler()
    first, second = await asyncio.gather(
        *(asgi_request(handler, path="/tests/thread-ids/") for _ in range(2))
    )
    first, second = json.loads(first.body), json.loads(second.body)
    # Each request keeps its thread across its calls; two at once get two threads.
    assert first[0] == first[1]
    assert second[0] == second[1]
    assert first[0] != second[0]


def test_idle_threads_are_bounded():
    threads = IdleThreads(limit=2)
    borrowed = [threads.borrow() for _ in range(3)]
    for executor in borrowed:
        threads.give_back(executor)
    assert threads.idle == borrowed[:2]
    assert borrowed[2]._shutdown


def opened_connections():
    """Patch every database connection opened to be recorded, with an event for the first."""
    opened: list[BaseDatabaseWrapper] = []
    first = threading.Event()
    ensure_connection = BaseDatabaseWrapper.ensure_connection

    def recording(wrapper):
        ensure_connection(wrapper)
        if wrapper not in opened:
            opened.append(wrapper)
            first.set()

    patch = mock.patch.object(BaseDatabaseWrapper, "ensure_connection", recording)
    return patch, opened, first


@pytest.mark.django_db(transaction=True)
def test_a_retired_idle_thread_closes_its_connections():
    threads = IdleThreads(limit=0)
    executor = threads.borrow()
    patch, opened, _ = opened_connections()
    with patch:
        executor.submit(lambda: get_user_model().objects.count()).result(timeout=5)
    threads.give_back(executor)
    executor.shutdown(wait=True)
    assert opened and opened[0].connection is None


@pytest.mark.django_db(transaction=True)
@pytest.mark.urls("core.tests.urls")
async def test_a_cancelled_request_closes_the_connection_its_thread_opened():
    handler = ASGIHandler()
    patch, opened, first = opened_connections()
    with patch:
        request = asyncio.ensure_future(asgi_request(handler, path="/tests/count-users-then-wait/"))
        assert await asyncio.to_thread(first.wait, 5)
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
    # The request's thread is idle again, and runs what is submitted after the cleanup.
    (thread,) = handler.threads.idle
    await asyncio.wrap_future(thread.submit(lambda: None))
    assert opened[0].connection is None


@pytest.mark.django_db(transaction=True)
@pytest.mark.urls("core.tests.urls")
async def test_shared_threads_keep_a_sqlite_connection_from_one_request_to_the_next(settings):
    settings.REQUEST_THREADS = 8
    handler = ASGIHandler()
    created = []

    def record(connection, **kwargs):
        created.append(connection)

    connection_created.connect(record)
    try:
        for _ in range(3):
            assert (await asgi_request(handler, path="/tests/count-users/")).status == 200
    finally:
        connection_created.disconnect(record)
    if connections["default"].vendor == "sqlite":
        assert len(created) == 1
    else:  # from Django's pool and back for each request
        assert len(created) == 3
    await asyncio.to_thread(handler.threads.executor.shutdown)
    assert all(connection.connection is None for connection in created)


# The request-body cap (core/limits.py) and HEAD.

BODY_RECEIVED = []


@csrf_exempt
async def body_size(request):
    return JsonResponse({"size": len(request.body)})


@max_body(2000)
@csrf_exempt
async def roomy_body_size(request):
    return JsonResponse({"size": len(request.body)})


@csrf_exempt
@max_body(lambda: settings.TEST_BODY_CAP)  # under another decorator: the mark is copied
async def capped_by_setting(request):
    return JsonResponse({"size": len(request.body)})


def streamed(request):
    """A streaming response that records whether its body was iterated and whether it was closed."""

    async def content():
        BODY_RECEIVED.append("iterated")
        yield b"chunk"

    response = StreamingHttpResponse(content(), content_type="text/plain")
    response["Content-Length"] = "5"
    response._resource_closers.append(lambda: BODY_RECEIVED.append("closed"))
    return response


async def async_streamed(request):
    return streamed(request)


urlpatterns = [
    *project_urlpatterns,
    path("tests/body-size/", body_size),
    path("tests/roomy/", roomy_body_size),
    path("tests/by-setting/", capped_by_setting),
    path("tests/limited/", include(([path("body-size/", body_size)], "limited"))),
    path("tests/streamed/", async_streamed),
]


class Client:
    """Drives the handler with the body in `chunks` (`more_body` between them), counting
    the receive() calls it makes and the bytes it is given."""

    def __init__(self, chunks, headers=()):
        self.chunks = list(chunks)
        self.headers = headers
        self.receives = 0
        self.bytes_given = 0
        self.sent = []

    async def receive(self):
        self.receives += 1
        if self.chunks:
            chunk = self.chunks.pop(0)
            self.bytes_given += len(chunk)
            return {"type": "http.request", "body": chunk, "more_body": bool(self.chunks)}
        await asyncio.Event().wait()  # no disconnect: the handler cancels this when done

    async def send(self, message):
        self.sent.append(message)

    async def post(self, path, method="POST"):
        await ASGIHandler()(http_scope(method, path, self.headers), self.receive, self.send)
        return self

    @property
    def status(self) -> int:
        return self.sent[0]["status"]

    @property
    def response_headers(self) -> dict[str, str]:
        return {k.decode().lower(): v.decode() for k, v in self.sent[0]["headers"]}

    @property
    def body(self) -> bytes:
        return b"".join(message.get("body", b"") for message in self.sent[1:])


@pytest.fixture
def cap(settings):
    settings.ROOT_URLCONF = __name__
    settings.REQUEST_MAX_BODY_BYTES = 1000
    return settings


@pytest.fixture
def rollovers():
    """The number of request bodies spooled to a temporary file on disk."""
    rolled = []
    original = tempfile.SpooledTemporaryFile.rollover

    def rollover(file):
        rolled.append(file)
        return original(file)

    with mock.patch.object(tempfile.SpooledTemporaryFile, "rollover", rollover):
        yield rolled


async def test_a_declared_body_over_the_cap_is_refused_before_any_is_read(cap):
    client = Client([b"x" * 65536] * 100, headers=[("content-length", str(65536 * 100))])
    await client.post("/tests/body-size/")
    assert client.status == 413
    assert json.loads(client.body) == {"detail": "Request body over 1000 bytes."}
    assert client.response_headers["content-type"] == "application/json"
    # The rest of the body is on the wire: the server closes the connection.
    assert client.response_headers["connection"] == "close"
    assert client.receives == 0


async def test_a_chunked_body_is_cut_off_once_past_the_cap(cap, rollovers):
    cap.REQUEST_MAX_BODY_BYTES = 100_000
    # 19 MiB, announced by no Content-Length: Django read and spooled all of it.
    client = Client([b"x" * 65536] * 300)
    await client.post("/tests/body-size/")
    assert client.status == 413
    assert json.loads(client.body) == {"detail": "Request body over 100000 bytes."}
    assert (client.receives, client.bytes_given) == (2, 2 * 65536)
    assert rollovers == []


async def test_a_body_under_the_cap_reaches_the_view(cap, rollovers):
    for headers in ((), [("content-length", "1000")]):
        client = Client([b"x" * 400, b"x" * 400, b"x" * 200], headers=headers)
        await client.post("/tests/body-size/")
        assert client.status == 200
        assert json.loads(client.body) == {"size": 1000}
    assert rollovers == []


async def test_a_view_or_its_url_namespace_sets_its_own_cap(cap, monkeypatch):
    cap.TEST_BODY_CAP = 50
    monkeypatch.setitem(limits.namespace_limits, "limited", 10)
    for url, size, status in [
        ("/tests/roomy/", 2000, 200),
        ("/tests/roomy/", 2001, 413),
        ("/tests/by-setting/", 50, 200),
        ("/tests/by-setting/", 51, 413),
        ("/tests/limited/body-size/", 11, 413),
        ("/tests/limited/body-size/", 10, 200),
        # A path that resolves to nothing has the project's cap.
        ("/nowhere/", 1001, 413),
    ]:
        client = await Client([b"x" * size]).post(url)
        assert client.status == status, (url, size)
        if status == 413:
            assert client.receives == 1


@pytest.mark.project_classes
async def test_a_body_under_the_cap_costs_no_thread(cap):
    handler = ASGIHandler()
    client = Client([b"x" * 500], headers=[("content-length", "500")])
    scope = http_scope("POST", "/tests/body-size/", client.headers)
    with threads_started() as started, count_thread_hops() as hops:
        await handler(scope, client.receive, client.send)
    assert client.status == 200
    assert (hops, started) == ([], [])


async def test_head_never_iterates_a_streaming_body(cap):
    BODY_RECEIVED.clear()
    finished = []

    def receiver(**kwargs):
        finished.append(True)

    signals.request_finished.connect(receiver)
    try:
        head = await asgi_request(ASGIHandler(), "HEAD", "/tests/streamed/")
    finally:
        signals.request_finished.disconnect(receiver)
    assert head.status == 200
    assert head.headers["content-length"] == "5"
    assert head.body == b""
    # Not iterated, but closed: its resources were released and request_finished sent.
    assert BODY_RECEIVED == ["closed"]
    assert finished == [True]

    BODY_RECEIVED.clear()
    get = await asgi_request(ASGIHandler(), "GET", "/tests/streamed/")
    assert get.body == b"chunk"
    assert BODY_RECEIVED == ["iterated", "closed"]


# uvloop's error for a write to a transport that closed under the response.
UVLOOP_CLOSED = RuntimeError(
    "unable to perform operation on <TCPTransport closed=True reading=False>; the handler is closed"
)


class LeavingClient:
    """Sends a GET, then fails the `fail_at`th message the handler sends with `error`."""

    def __init__(self, error: Exception, fail_at: int = 2):
        self.error, self.fail_at = error, fail_at
        self.sent = []
        self.request_sent = False

    async def receive(self):
        if not self.request_sent:
            self.request_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        # uvicorn never tells a pipelined request that its client left (core/protocol.py).
        await asyncio.Event().wait()

    async def send(self, message):
        self.sent.append(message)
        if len(self.sent) == self.fail_at:
            raise self.error


@pytest.mark.parametrize("fail_at", [1, 2])
@pytest.mark.parametrize("error", [UVLOOP_CLOSED, ConnectionResetError(104, "reset")])
async def test_a_send_to_a_client_that_left_ends_the_request_quietly(error, fail_at, caplog):
    finished = []

    def receiver(**kwargs):
        finished.append(True)

    client = LeavingClient(error, fail_at)
    signals.request_finished.connect(receiver)
    try:
        await ASGIHandler()(http_scope("GET", "/healthz"), client.receive, client.send)
    finally:
        signals.request_finished.disconnect(receiver)
    assert len(client.sent) == fail_at
    assert finished == [True]
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


async def test_any_other_error_of_a_send_is_raised():
    client = LeavingClient(RuntimeError("Response content longer than Content-Length"))
    with pytest.raises(RuntimeError, match="longer than"):
        await ASGIHandler()(http_scope("GET", "/healthz"), client.receive, client.send)


def test_uvloop_words_a_write_to_a_closed_transport_as_the_handler_expects():
    uvloop = pytest.importorskip("uvloop")

    async def write_after_close():
        ours, theirs = socket.socketpair()
        with theirs:
            loop = asyncio.get_running_loop()
            transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
            transport.close()
            await asyncio.sleep(0)
            with pytest.raises(RuntimeError) as raised:
                transport.write(b"late")
        return str(raised.value)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        message = runner.run(write_after_close())
    assert CLOSED_TRANSPORT in message


async def test_a_subclass_that_skips_init_still_serves():
    """Django's ASGIStaticFilesHandler, for one, sets its own attributes and never calls ours."""

    class Bare(ASGIHandler):
        def __init__(self):
            self.load_middleware(is_async=True)

    response = await asgi_request(Bare(), path="/healthz")
    assert response.status == 200


@override_settings(DEBUG=True)
async def test_django_s_static_files_handler_serves_on_this_handler():
    """ASGIStaticFilesHandler's mixin, on this handler as runserver's would put it."""

    class StaticFiles(ASGIStaticFilesHandler, ASGIHandler):
        pass

    application = StaticFiles(ASGIHandler())
    response = await asgi_request(application, path="/static/admin/css/base.css")
    assert response.status == 200
    assert b"body" in response.body
