"""core.asgi.ASGIHandler: no thread for async-only requests, Django's behaviour otherwise."""

import asyncio
import contextlib
import json
import threading
from unittest import mock

import pytest
from django.core import signals
from django.core.handlers.asgi import ASGIHandler as DjangoASGIHandler
from django.db.backends.base.base import BaseDatabaseWrapper
from django.test import override_settings

from core.asgi import ASGIHandler, IdleThreads
from core.testing import asgi_request, count_thread_hops


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
    for path in ("/healthz", "/", "/nowhere/"):
        ours = await asgi_request(ASGIHandler(), path=path)
        django = await asgi_request(DjangoASGIHandler(), path=path)
        assert (ours.status, ours.body) == (django.status, django.body)


@pytest.mark.urls("core.tests.urls")
async def test_sync_requests_reuse_an_idle_thread():
    handler = ASGIHandler()
    with threads_started() as started:
        for _ in range(20):
            assert (await asgi_request(handler, path="/tests/sync/")).status == 200
    assert len(started) == 1


@pytest.mark.urls("core.tests.urls")
async def test_concurrent_requests_never_share_a_thread():
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
