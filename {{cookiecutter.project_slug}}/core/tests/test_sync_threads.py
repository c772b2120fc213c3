"""core.asgi.SyncThreads: every request's sync calls on as few threads as keep up."""

import asyncio
import threading
import time
from concurrent.futures import Executor, ThreadPoolExecutor

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import close_old_connections, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created

from core import asgi
from core.asgi import SyncThreads


def eventually(condition, timeout: float = 2.0) -> bool:
    """Whether `condition()` comes true within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def run_on(threads: SyncThreads, fn, *args):
    return asyncio.wrap_future(threads.submit(fn, *args))


async def test_calls_run_in_order_on_one_thread_while_it_keeps_up():
    # "Keeps up" within seconds, not the default 10 ms: a loaded machine can
    # hold any thread off the CPU that long (the spill itself is tested below).
    threads = SyncThreads(4, spill_after=5, query_spill=5)
    ran = []
    await asyncio.gather(
        *(run_on(threads, lambda n=n: ran.append((n, threading.get_ident()))) for n in range(50))
    )
    assert [n for n, _ in ran] == list(range(50))
    assert len({ident for _, ident in ran}) == 1
    threads.shutdown()


async def test_a_slow_call_hands_the_calls_after_it_to_the_next_thread():
    threads = SyncThreads(4, spill_after=0.02)
    release = threading.Event()
    slow = run_on(threads, release.wait, 5)
    try:
        # No further call comes to prompt it: the handover happens on its own.
        fast = await asyncio.wait_for(run_on(threads, threading.get_ident), 2)
        assert not slow.done()
        assert fast != threads.workers[0].ident
    finally:
        release.set()
    assert await slow is True
    threads.shutdown()


@pytest.mark.django_db(transaction=True)
async def test_a_thread_waiting_on_a_query_hands_the_calls_after_it_on_at_once():
    threads = SyncThreads(2, spill_after=60)  # only the query's wait can tell
    release = threading.Event()

    def wait_for_release(execute, sql, params, many, context):
        release.wait(5)  # as a database a network hop away would
        return execute(sql, params, many, context)

    def blocked_query():
        connection = connections["default"]
        connection.ensure_connection()  # its query timer first, then the wait inside it
        with connection.execute_wrapper(wait_for_release):
            return get_user_model().objects.count()

    slow = run_on(threads, blocked_query)
    try:
        other = await asyncio.wait_for(run_on(threads, threading.get_ident), 2)
        assert other != threads.workers[0].ident
        assert not slow.done()
    finally:
        release.set()
    assert await slow == 0
    threads.shutdown()


async def test_no_more_than_size_threads_run_at_once():
    threads = SyncThreads(2, spill_after=0.01)
    release = threading.Event()
    running = []
    lock = threading.Lock()

    def blocked():
        with lock:
            running.append(threading.get_ident())
        release.wait(5)
        return len(running)

    calls = [run_on(threads, blocked) for _ in range(3)]
    assert await asyncio.to_thread(eventually, lambda: len(running) == 2)
    await asyncio.sleep(0.1)
    assert len(running) == 2  # the third waits for a thread
    release.set()
    await asyncio.gather(*calls)
    assert len(running) == 3
    assert len(set(running)) == 2
    threads.shutdown()


@pytest.mark.django_db(transaction=True)
def test_the_first_thread_too_closes_its_connections_once_idle():
    """Whatever a request's cleanup closed elsewhere, an idle thread holds no connection."""
    threads = SyncThreads(1, idle_close=0.05)
    try:
        wrapper = threads.submit(
            lambda: (get_user_model().objects.count(), connections["default"])[1]
        ).result(timeout=5)
        assert eventually(lambda: wrapper.connection is None)
    finally:
        threads.shutdown()


@pytest.mark.django_db(transaction=True)
async def test_a_spare_thread_closes_its_connections_once_idle():
    threads = SyncThreads(2, spill_after=0.01, idle_close=0.05)
    release = threading.Event()
    held = run_on(threads, release.wait, 5)

    def query():
        get_user_model().objects.count()
        return connections["default"]

    try:
        wrapper = await asyncio.wait_for(run_on(threads, query), 2)
        assert wrapper.connection is not None
    finally:
        release.set()
    await held
    assert await asyncio.to_thread(eventually, lambda: wrapper.connection is None)
    threads.shutdown()


async def test_an_exception_reaches_the_caller_and_the_thread_goes_on():
    threads = SyncThreads(1)
    with pytest.raises(ZeroDivisionError):
        await run_on(threads, lambda: 1 / 0)
    assert await run_on(threads, lambda: "next") == "next"
    threads.shutdown()


async def test_a_call_cancelled_before_it_starts_never_runs():
    threads = SyncThreads(1, spill_after=10)
    release = threading.Event()
    ran = []
    held = threads.submit(release.wait, 5)
    cancelled = threads.submit(ran.append, "ran")
    assert cancelled.cancel()
    release.set()
    assert await asyncio.wrap_future(held) is True
    await run_on(threads, lambda: None)
    assert ran == []
    threads.shutdown()


def test_after_shutdown_calls_are_refused_and_the_threads_end():
    threads = SyncThreads(2)
    assert threads.submit(lambda: 1).result(timeout=5) == 1
    threads.shutdown()
    with pytest.raises(RuntimeError):
        threads.submit(lambda: 2)
    assert threads.workers
    assert not any(thread.is_alive() for thread in threads.workers)


def test_a_negative_number_of_threads_fails_the_system_check(settings):
    settings.REQUEST_THREADS = -1
    with pytest.raises(SystemCheckError, match=r"core\.E004"):
        call_command("check")


def new_connection(executor: Executor) -> BaseDatabaseWrapper:
    """The connection of `executor`'s thread, after it has opened and closed it."""

    def connect():
        connection = connections["default"]
        connection.ensure_connection()
        connection.close()
        return connection

    return executor.submit(connect).result(timeout=5)


@pytest.mark.django_db(transaction=True)
def test_only_the_shared_threads_time_their_queries():
    # As in a process that has not built a SyncThreads (REQUEST_THREADS=0).
    connection_created.disconnect(dispatch_uid=asgi.WATCH_QUERIES)
    threads = SyncThreads(1)
    try:
        assert new_connection(threads).execute_wrappers == [asgi.time_queries]
        # Connected again, as for each request: still timed once.
        assert new_connection(threads).execute_wrappers == [asgi.time_queries]
        with ThreadPoolExecutor(1) as other:
            assert new_connection(other).execute_wrappers == []
    finally:
        threads.shutdown()


@pytest.mark.django_db(transaction=True)
def test_a_shared_thread_keeps_a_sqlite_connection_from_one_request_to_the_next():
    threads = SyncThreads(1)

    def request(left_in_a_transaction=False):
        """A request's query, then request_finished's housekeeping; the connection after it."""
        connection = connections["default"]
        get_user_model().objects.count()
        if left_in_a_transaction:
            connection.set_autocommit(False)
        close_old_connections()
        return connection.connection

    try:
        first, second = (threads.submit(request).result(timeout=5) for _ in range(2))
        if connections["default"].vendor == "sqlite":
            assert first is not None
            assert second is first
        else:  # back in Django's pool after each request
            assert first is None
            assert second is None
        # Whatever the database, one not back in autocommit is not kept.
        assert threads.submit(request, left_in_a_transaction=True).result(timeout=5) is None
    finally:
        threads.shutdown()


@pytest.mark.django_db(transaction=True)
def test_a_thread_closes_its_connections_when_shut_down():
    threads = SyncThreads(1)
    wrapper = threads.submit(lambda: (get_user_model().objects.count(), connections["default"]))
    _, wrapper = wrapper.result(timeout=5)
    assert wrapper.connection is not None
    threads.shutdown()
    assert wrapper.connection is None
