import asyncio
import json
import threading
from unittest import mock

import pytest
from django.db import OperationalError
from django.db.backends.base.base import BaseDatabaseWrapper

from config.asgi import application
from core.readiness import CheckFailed, run_check
from core.testing import asgi_request, database_down


async def test_healthz_answers_ok(async_client):
    response = await async_client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


async def test_healthz_touches_no_database(async_client):
    # Without a django_db mark pytest-django makes any database access raise, so
    # this passing proves liveness never waits on the database.
    response = await async_client.get("/healthz")
    assert response.status_code == 200


async def test_healthz_refuses_writes(async_client):
    response = await async_client.post("/healthz")
    assert response.status_code == 405


@pytest.mark.django_db(transaction=True)
async def test_readyz_reports_each_check(async_client, settings):
    settings.READINESS_CHECKS = {"database": "core.readiness.database"}
    response = await async_client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert isinstance(body["checks"]["database"]["ms"], float)


@pytest.mark.django_db(transaction=True)
async def test_readyz_names_a_failing_database(async_client):
    failure = OperationalError("connection refused")
    with mock.patch.object(BaseDatabaseWrapper, "cursor", side_effect=failure):
        response = await async_client.get("/readyz")
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == {
        "ok": False,
        "ms": body["checks"]["database"]["ms"],
        "error": "OperationalError",
    }


class Missing(CheckFailed):
    pass


async def missing():
    raise Missing("the thing is not there")


async def broken():
    raise ZeroDivisionError


async def test_a_check_that_finds_its_dependency_missing_logs_one_line(caplog):
    result = await run_check("thing", missing)
    assert result["ok"] is False and result["error"] == "Missing"
    (record,) = caplog.records
    assert record.getMessage() == "Readiness check thing failed: the thing is not there"
    assert record.exc_info is None


async def test_a_check_that_fails_itself_logs_its_traceback(caplog):
    result = await run_check("thing", broken)
    assert result["error"] == "ZeroDivisionError"
    (record,) = caplog.records
    assert record.exc_info[0] is ZeroDivisionError


@pytest.mark.django_db(transaction=True)
async def test_readyz_times_out_a_hanging_check(async_client, settings):
    async def hangs():
        await asyncio.sleep(10)

    settings.READINESS_TIMEOUT = 0.05
    with mock.patch("core.readiness.database", hangs):
        response = await async_client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"]["error"] == "timeout"


@pytest.mark.django_db(transaction=True)
async def test_a_hanging_database_check_neither_holds_the_answer_nor_leaks_its_connection(
    settings,
):
    settings.READINESS_CHECKS = {"database": "core.readiness.database"}
    settings.READINESS_TIMEOUT = 0.05
    release, returned, closed = threading.Event(), threading.Event(), threading.Event()
    entered = threading.Event()
    held = []
    ensure_connection = BaseDatabaseWrapper.ensure_connection

    def connect_then_hang(wrapper):
        ensure_connection(wrapper)
        if not held:  # the check's connection, on the check's thread
            held.append(wrapper)
            close = wrapper.close
            wrapper.close = lambda: (close(), closed.set())
            entered.set()
            release.wait(timeout=5)
            returned.set()

    try:
        with mock.patch.object(BaseDatabaseWrapper, "ensure_connection", connect_then_hang):
            # On a loaded machine the timeout may pass before the check's
            # thread picks the query up; the query is then dropped unrun, so
            # ask again until one has really started.
            for _attempt in range(20):
                response = await asgi_request(application, path="/readyz")
                assert response.status == 503
                assert json.loads(response.body)["checks"]["database"]["error"] == "timeout"
                # Answered while the query still hangs: before, the end of the
                # request waited for the thread the query held.
                assert not returned.is_set()
                if await asyncio.to_thread(entered.wait, 0.5):
                    break
            assert entered.is_set(), "the check's thread never started the query"
        assert not returned.is_set()
    finally:
        release.set()
    # The abandoned check closes its connection once its query returns.
    assert await asyncio.to_thread(closed.wait, 5)
    assert held[0].connection is None


async def test_static_files_are_served_under_asgi(async_client):
    response = await async_client.get("/static/admin/css/base.css")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/css")
    body = b"".join([chunk async for chunk in response.streaming_content])
    assert b"body" in body


@pytest.mark.django_db(transaction=True)
@pytest.mark.urls("core.tests.urls")
async def test_a_database_outage_answers_503_json_not_a_500(async_client):
    assert (await async_client.get("/tests/count-users/")).json() == {"users": 0}
    with database_down():
        response = await async_client.get("/tests/count-users/")
    assert response.status_code == 503
    assert response.json() == {"detail": "The database is unavailable; retry shortly."}
    assert response["Retry-After"] == "5"
    # Back up: the same request answers again.
    assert (await async_client.get("/tests/count-users/")).status_code == 200


@pytest.mark.urls("core.tests.urls")
async def test_other_errors_still_raise(async_client):
    with (
        mock.patch("core.tests.urls.get_user_model", side_effect=ValueError("a bug")),
        pytest.raises(ValueError, match="a bug"),
    ):
        await async_client.get("/tests/count-users/")
