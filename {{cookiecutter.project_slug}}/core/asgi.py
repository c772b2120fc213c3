"""Django's ASGI handler, minus a thread for requests that run no sync code.

Django serves each request in its own asgiref ThreadSensitiveContext, so the
request's sync code (ORM calls through sync_to_async, sync middleware and
views) runs on a thread of its own. asgiref starts that thread on the first
sync call and, when the request ends, joins it from yet another new thread.
Django itself always makes such a call: the receivers of request_started and
request_finished (close the thread's stale database connections, reset the
urlconf, close caches) are sync. So even a request served entirely by async
code starts two threads and pays two hops; on /healthz that is most of what
Django spends (bench/).

Here those receivers run inline on the event loop when they are Django's own
and the request never used a thread: it has no database connection or cache
to close, and on the loop they find none either. As soon as the request runs
sync code, or the project connects a receiver of its own to either signal,
everything goes through the request's thread exactly as in Django, and the
receivers close that thread's connections at the end.

Which thread that is, settings.REQUEST_THREADS says. At 0, the default, each
request gets a thread of its own, as in Django, one of a few kept idle between
requests rather than started and joined each time. At N, every request's sync
calls share at most N threads, as few as keep up (SyncThreads): one, unless a
call blocks.

Two costs are bounded before they are paid. A request body is read under
its cap (core/limits.py): over it, the answer is 413 JSON and the rest of
the body is never read. And a HEAD request is answered with its headers
only: a streaming response's body (a file, an event stream) is never
iterated, only closed. Before either, a request whose Content-Type declares
a charset Django cannot decode with is answered 400 (core/charset.py).

A client that leaves is not a server error. uvicorn drops what is sent
once it has marked the request disconnected, but it marks only the latest
request of a connection: when a client pipelines requests and hangs up, the
one being answered writes to the closed transport, and uvloop raises
RuntimeError ("... the handler is closed"). That error, and the OSError the
ASGI spec asks servers to raise for a send on a closed connection, end the
request as Django ends one whose client left (RequestAborted); every other
error of a send is raised as before.
"""

import asyncio
import collections
import functools
import sys
import threading
import time
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import closing
from contextvars import ContextVar

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.cache import close_caches
from django.core.exceptions import RequestAborted
from django.core.handlers import asgi
from django.core.handlers.base import reset_urlconf
from django.db import close_old_connections, connections, reset_queries
from django.db.backends.signals import connection_created
from django.dispatch import Signal
from django.urls import set_script_prefix

from core.charset import charset_refusal
from core.limits import BodyTooLarge, read_body

# Django's own receivers of request_started and request_finished: each clears
# what the current thread holds (connections, query log, urlconf, caches).
HOUSEKEEPING = frozenset({close_old_connections, reset_queries, reset_urlconf, close_caches})
# The end of uvloop's message for a write to a closed transport (UVHandle._ensure_alive).
CLOSED_TRANSPORT = "the handler is closed"


class IdleThreads:
    """Single-thread executors kept between requests, so none is started or joined per request.

    A request borrows one for its whole life, as Django gives each request a
    thread of its own, and gives it back at the end; at most `limit` wait idle.
    """

    def __init__(self, limit: int = 32):
        self.limit = limit
        self.idle: list[ThreadPoolExecutor] = []
        self.lock = threading.Lock()

    def borrow(self) -> ThreadPoolExecutor:
        with self.lock:
            if self.idle:
                return self.idle.pop()
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")

    def give_back(self, executor: ThreadPoolExecutor) -> None:
        with self.lock:
            if len(self.idle) < self.limit:
                self.idle.append(executor)
                return
        # A retired thread's connections would be left to the garbage collector.
        executor.submit(connections.close_all)
        executor.shutdown(wait=False)


class SyncThreads(Executor):
    """At most `size` threads for the sync calls of every request, as few as keep up.

    Calls wait in one queue, first in, first out. The first thread takes them
    one after another. The next thread takes them only while every thread
    before it is slow, and so on. A thread is slow once it has waited on one
    database query for over `query_spill` seconds (a database a network hop
    away, a long query), or run one call for over `spill_after` (any other
    blocking: a sync call to another service). Under a load one thread keeps
    up with, the event loop and that thread are all that take turns on the
    GIL. That turn-taking among a thread per request is what made an async ORM
    read cost more CPU than sync Django under concurrency (bench/orm.py). The
    idea is Go's scheduler's hand-off of a processor from a thread blocked in
    a system call; the query timer is how this one knows "blocked".

    A request's calls run one after another, but not always on one thread:
    state that must last across calls (a transaction) belongs inside one call,
    as Django's async ORM already requires. Each request's request_finished
    receivers close the connections of the thread they run on, as with a
    thread per request. A thread that has had no call for `idle_close`
    seconds closes its own as well: a request's cleanup that ran on another
    thread than its queries leaves none open for longer.
    """

    def __init__(
        self,
        size: int,
        spill_after: float | None = None,
        query_spill: float = 0.001,
        idle_close: float = 1.0,
    ):
        self.size = size
        # Two GIL switch intervals (5 ms each by default): a call that has run for
        # longer is not merely waiting for the event loop to let go of the GIL.
        self.spill_after = 2 * sys.getswitchinterval() if spill_after is None else spill_after
        # A query holds no GIL while it waits on the database: a thread that has
        # waited this long is blocked, whatever the loop is doing.
        self.query_spill = query_spill
        self.idle_close = idle_close
        self.querying_since: list[float | None] = []  # per started thread: its query's start
        self.lock = threading.Lock()
        self.calls: collections.deque = collections.deque()
        self.busy_since: list[float | None] = []  # per started thread: its call's start
        self.idle: list[bool] = []
        self.wakeups: list[threading.Condition] = []
        self.workers: list[threading.Thread] = []
        self.stopping = False
        self.recheck_armed = False
        # Queries are timed only in a process that shares threads: with a
        # thread per request nothing reads the timer.
        connection_created.connect(watch_queries, dispatch_uid=WATCH_QUERIES)

    def submit(self, fn, /, *args, **kwargs):
        future: Future = Future()
        with self.lock:
            if self.stopping:
                raise RuntimeError("cannot submit calls after shutdown")
            self.calls.append((future, fn, args, kwargs))
            recheck = self.dispatch()
        if recheck:
            self.arm_recheck()
        return future

    def dispatch(self) -> bool:
        """Wake the thread that should take the next call (with the lock held);
        whether to look again in `spill_after` seconds, in case the busy ones are slow."""
        now = time.monotonic()
        for index in range(self.size):
            if index == len(self.busy_since):
                self.start_thread()
                return False
            if self.idle[index]:
                self.wakeups[index].notify()
                return False
            if not self.slow(index, now):
                return True  # busy, but perhaps not for long
        return False  # every thread is slow: the call waits for the first one free

    def slow(self, index: int, now: float) -> bool:
        """Whether thread `index` is blocked in its current call (with the lock held)."""
        started, querying = self.busy_since[index], self.querying_since[index]
        if started is None:  # between two calls: it takes the next itself
            return False
        return now - started >= self.spill_after or (
            querying is not None and now - querying >= self.query_spill
        )

    def arm_recheck(self) -> None:
        # One timer at a time, on the loop that submits: with no further call
        # to prompt it, a slow first thread must still hand its queue on.
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if not self.recheck_armed:
            self.recheck_armed = True
            loop.call_later(min(self.spill_after, self.query_spill), self.recheck)

    def recheck(self) -> None:
        with self.lock:
            self.recheck_armed = False
            again = bool(self.calls) and self.dispatch()
        if again:
            self.arm_recheck()

    def start_thread(self) -> None:
        index = len(self.busy_since)
        self.busy_since.append(None)
        self.querying_since.append(None)
        self.idle.append(False)
        self.wakeups.append(threading.Condition(self.lock))
        thread = threading.Thread(
            target=self.work, args=(index,), name=f"request_{index}", daemon=True
        )
        self.workers.append(thread)
        thread.start()

    def may_take(self, index: int) -> bool:
        now = time.monotonic()
        return all(self.slow(before, now) for before in range(index))

    def work(self, index: int) -> None:
        _worker.slot = (self, index)  # for time_queries()
        try:
            self.run_calls(index)
        finally:
            # The thread's connections are closed with it, not left to the
            # garbage collector.
            connections.close_all()

    def run_calls(self, index: int) -> None:
        """Take calls until shut down (with `index`'s place in the order)."""
        holding = False  # connections perhaps open since the last call
        while True:
            woken = True
            with self.lock:
                while not (self.calls and self.may_take(index)):
                    if self.stopping:
                        return
                    self.idle[index] = True
                    woken = self.wakeups[index].wait(self.idle_close if holding else None)
                    self.idle[index] = False
                    if not woken:
                        break  # idle for idle_close seconds
                else:
                    future, fn, args, kwargs = self.calls.popleft()
                    self.busy_since[index] = time.monotonic()
            if holding and not woken:
                # Not left holding a connection (a pooled one, above all) while idle.
                connections.close_all()
                holding = False
                continue
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(result)
                del future, fn, args, kwargs
            with self.lock:
                self.busy_since[index] = None
            holding = True

    def shutdown(self, wait=True, *, cancel_futures=False):
        """Refuse new calls; the threads end once the calls queued have run."""
        with self.lock:
            self.stopping = True
            if cancel_futures:
                while self.calls:
                    self.calls.popleft()[0].cancel()
            for wakeup in self.wakeups:
                wakeup.notify()
        if wait:
            for thread in self.workers:
                thread.join()


_worker = threading.local()


def time_queries(execute, sql, params, many, context):
    """A database execute wrapper on a SyncThreads thread's connections: when its query started."""
    threads, index = _worker.slot
    threads.querying_since[index] = time.monotonic()
    try:
        return execute(sql, params, many, context)
    finally:
        threads.querying_since[index] = None


WATCH_QUERIES = "core.asgi.watch_queries"


def watch_queries(sender, connection, **kwargs) -> None:
    """A connection_created receiver, connected by the first SyncThreads, for its threads.

    Times the connection's queries (time_queries), and keeps a SQLite
    connection open from one request to the next, as CONN_MAX_AGE = None
    would: opening one costs a fifth of a SQLite read (docs/benchmarks.md).
    That is safe here, not with a thread per request: these threads are few
    and reused, and each closes its connections once idle for a second or
    when it ends. request_finished still closes a connection left unusable or in
    a transaction (close_if_unusable_or_obsolete). A PostgreSQL connection
    goes back to Django's pool at the end of each request, as before.
    """
    if getattr(_worker, "slot", None) is None:
        return
    # Once: the signal comes again each time the wrapper connects (from the pool, say).
    if time_queries not in connection.execute_wrappers:
        connection.execute_wrappers.append(time_queries)
    if connection.vendor == "sqlite":
        # Set by connect() from CONN_MAX_AGE just before this signal (core/internals.py).
        connection.close_at = None


class SharedPool:
    """IdleThreads' interface over one SyncThreads every request shares."""

    def __init__(self, executor: SyncThreads):
        self.executor = executor

    def borrow(self) -> SyncThreads:
        return self.executor

    def give_back(self, executor: SyncThreads) -> None:
        pass


class RequestThread(Executor):
    """One request's thread for sync code: borrowed on the first sync call, if any."""

    def __init__(self, threads: IdleThreads):
        self.threads = threads
        self.executor: ThreadPoolExecutor | None = None

    @property
    def started(self) -> bool:
        return self.executor is not None

    def submit(self, fn, /, *args, **kwargs):
        if self.executor is None:
            self.executor = self.threads.borrow()
        return self.executor.submit(fn, *args, **kwargs)

    def release(self) -> None:
        """Give the thread back. A call still running on it (its request was cancelled)
        finishes first: the next request's calls queue behind it, on the same thread."""
        if self.executor is not None:
            self.threads.give_back(self.executor)
            self.executor = None


_request_thread: ContextVar[Executor] = ContextVar("request_thread")


def only_housekeeping(signal: Signal, sender) -> bool:
    # The receivers Signal.send and Signal.asend themselves would call.
    sync_receivers, async_receivers = signal._live_receivers(sender)
    return not async_receivers and all(receiver in HOUSEKEEPING for receiver in sync_receivers)


class ASGIHandler(asgi.ASGIHandler):
    @functools.cached_property
    def threads(self) -> IdleThreads | SharedPool:
        # Made on first use, not in __init__: a subclass that does not call
        # super().__init__() (Django's ASGIStaticFilesHandler) still gets them.
        # Django's own test settings (tests/test_django_suite.py) have no such setting.
        size = getattr(settings, "REQUEST_THREADS", 0)
        return SharedPool(SyncThreads(size)) if size else IdleThreads()

    def request_executor(self, scope) -> Executor:
        """The executor that runs this request's sync code: a thread of its own."""
        return RequestThread(self.threads)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        executor = self.request_executor(scope)
        token = _request_thread.set(executor)
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        except asyncio.CancelledError:
            # No request_finished comes (the server is stopping, say): close the
            # thread's stale connections here, once any sync call the
            # cancellation left running on it returns.
            if not isinstance(executor, RequestThread) or executor.started:
                executor.submit(close_old_connections)
            raise
        finally:
            _request_thread.reset(token)
            if isinstance(executor, RequestThread):
                executor.release()

    def on_the_loop(self, signal: Signal) -> bool:
        """Whether `signal`'s receivers may run inline: only Django's, and no request thread."""
        executor = _request_thread.get(None)
        if not isinstance(executor, RequestThread) or executor.started:
            return False
        return only_housekeeping(signal, self.__class__)

    async def send_request_started(self, scope) -> None:
        if self.on_the_loop(signals.request_started):
            signals.request_started.send(sender=self.__class__, scope=scope)
        else:
            await signals.request_started.asend(sender=self.__class__, scope=scope)

    async def close_response(self, response) -> None:
        """response.close(): closes its resources and sends request_finished."""
        if self.on_the_loop(signals.request_finished):
            response.close()
        else:
            await sync_to_async(response.close)()

    async def send_headers(self, response, send) -> None:
        """Answer HEAD: Django's send_response minus the body.

        The body is never iterated: a streaming response's iterator does not
        start (no file is read, no stream followed). The caller still closes
        the response, which closes its resources and sends request_finished.
        """
        headers = [
            (
                name.encode("ascii") if isinstance(name, str) else bytes(name),
                value.encode("latin1") if isinstance(value, str) else bytes(value),
            )
            for name, value in response.items()
        ]
        headers += [
            (b"Set-Cookie", cookie.OutputString().encode("ascii"))
            for cookie in response.cookies.values()
        ]
        start = {"type": "http.response.start", "status": response.status_code, "headers": headers}
        await send(start)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def handle(self, scope, receive, send):
        """Django's ASGIHandler.handle, with the charset checked and the body read under
        its cap, HEAD answered without its body, the two signal calls above, and a send
        to a client that has gone ending the request quietly."""
        send = quiet_when_gone(send)
        try:
            await self.serve_request(scope, receive, send)
        except RequestAborted:
            # Gone before or after the response started: nothing to answer.
            return

    # Not `serve`: Django's StaticFilesHandlerMixin has a serve(request) of its own.
    async def serve_request(self, scope, receive, send):
        if (refused := charset_refusal(scope)) is not None:
            await self.send_response(refused, send)
            return
        try:
            body_file = await read_body(scope, receive)
        except BodyTooLarge as too_large:
            await self.send_response(too_large.response, send)
            return

        with closing(body_file):
            set_script_prefix(asgi.get_script_prefix(scope))
            await self.send_request_started(scope)
            request, error_response = self.create_request(scope, body_file)
            if request is None:
                body_file.close()
                try:
                    await self.send_response(error_response, send)
                finally:
                    await self.close_response(error_response)
                return

            class RequestProcessed(Exception):
                pass

            response = None
            try:
                try:
                    async with asyncio.TaskGroup() as tg:
                        tg.create_task(self.listen_for_disconnect(receive))
                        response = await self.run_get_response(request)
                        if request.method == "HEAD":
                            await self.send_headers(response, send)
                        else:
                            await self.send_response(response, send)
                        raise RequestProcessed
                except* (RequestProcessed, RequestAborted):
                    pass
            except BaseExceptionGroup as exception_group:
                if len(exception_group.exceptions) == 1:
                    raise exception_group.exceptions[0] from None
                raise

            if response is None:
                if self.on_the_loop(signals.request_finished):
                    signals.request_finished.send(sender=self.__class__)
                else:
                    await signals.request_finished.asend(sender=self.__class__)
            else:
                await self.close_response(response)


def quiet_when_gone(send):
    """`send`, raising RequestAborted instead of the error a closed connection gives."""

    async def guarded_send(message):
        try:
            await send(message)
        except OSError as exc:
            raise RequestAborted from exc
        except RuntimeError as exc:
            if CLOSED_TRANSPORT not in str(exc):
                raise
            raise RequestAborted from exc

    return guarded_send
