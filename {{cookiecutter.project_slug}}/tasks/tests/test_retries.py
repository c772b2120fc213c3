"""tasks.retries.retry, and how the worker requeues a task that asks to be retried."""

import logging
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db import OperationalError
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from tasks import tasks as example
from tasks.models import Survey
from tasks.retries import RetryTask, backoff_delay, retry
from tasks.tests import jobs
from tasks.tests.conftest import run_worker


class Transient(Exception):
    pass


@retry(on=(Transient, KeyError), attempts=3, backoff=2.0)
async def always_failing(context, error: Exception):
    raise error


@pytest.mark.parametrize(("attempt", "base"), [(1, 2.0), (2, 4.0)])
async def test_an_attempt_before_the_last_asks_for_a_retry_with_backoff(attempt, base):
    with pytest.raises(RetryTask) as raised:
        await always_failing(SimpleNamespace(attempt=attempt), Transient("down"))
    assert base <= raised.value.delay <= base * 1.1
    assert isinstance(raised.value.__cause__, Transient)


def test_the_backoff_doubles_with_up_to_ten_percent_of_jitter():
    for attempt, base in ((1, 0.5), (2, 1.0), (3, 2.0), (6, 16.0)):
        delays = [backoff_delay(attempt, 0.5) for _ in range(50)]
        assert all(base <= delay <= base * 1.1 for delay in delays)


async def test_the_last_attempt_raises_the_error_itself():
    with pytest.raises(KeyError):
        await always_failing(SimpleNamespace(attempt=3), KeyError("gone"))


async def test_other_errors_are_not_retried():
    with pytest.raises(ValueError, match="a bug"):
        await always_failing(SimpleNamespace(attempt=1), ValueError("a bug"))


async def test_a_success_returns_the_value():
    @retry(on=Transient, attempts=2, backoff=1.0)
    async def works(context, value):
        return value

    assert await works(SimpleNamespace(attempt=1), 7) == 7


def test_retry_refuses_sync_functions_and_fewer_than_one_attempt():
    with pytest.raises(TypeError, match="async"):
        retry(on=Transient, attempts=2, backoff=1.0)(lambda context: None)
    with pytest.raises(ValueError, match="at least 1"):
        retry(on=Transient, attempts=0, backoff=1.0)


@pytest.mark.django_db(transaction=True)
async def test_the_worker_requeues_a_retry_then_fails_it_after_the_last_attempt(
    async_client, token_headers, settings, caplog
):
    settings.TASKS_PROGRESS_EVENTS = None
    result = await jobs.flaky.aenqueue()
    url = f"/tasks/{result.id}/"
    for attempt in (1, 2):
        before = timezone.now()
        with caplog.at_level(logging.ERROR, logger="tasks.worker"):
            await run_worker(max_tasks=1)
        db_result = await DBTaskResult.objects.aget(id=result.id)
        assert (db_result.status, len(db_result.worker_ids)) == ("READY", attempt)
        # The flaky task's backoff is 60 s: 60, then 120 (+10 % at most).
        wait = (db_result.run_after - before).total_seconds()
        assert 60 * attempt <= wait <= 66 * attempt + 1
        state = (await async_client.get(url, headers=token_headers)).json()
        assert (state["status"], state["attempts"], state["id"]) == ("READY", attempt, result.id)
        assert state["run_after"] == db_result.run_after.isoformat()
        (error,) = state["errors"]
        assert error["exception"] == "builtins.ConnectionError"
        assert f"attempt {attempt} failed" in error["traceback"]
        # Not due yet: a worker leaves it alone.
        assert not await DBTaskResult.objects.ready().filter(id=result.id).aexists()
        await DBTaskResult.objects.filter(id=result.id).aupdate(
            run_after=timezone.now() - timedelta(seconds=1)
        )
    with caplog.at_level(logging.CRITICAL, logger="django.tasks"):
        await run_worker(max_tasks=1)
    db_result = await DBTaskResult.objects.aget(id=result.id)
    assert (db_result.status, len(db_result.worker_ids)) == ("FAILED", 3)
    assert db_result.exception_class_path == "builtins.ConnectionError"
    assert "attempt 3 failed" in db_result.traceback
    assert jobs.runs[result.id] == 3


@pytest.mark.django_db(transaction=True)
async def test_the_example_task_is_retried_when_saving_fails(settings, monkeypatch, caplog):
    settings.TASKS_PROGRESS_EVENTS = None
    settings.TASKS_SURVEY_CHECKS = {"database": "core.readiness.database"}

    async def database_down(**kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(Survey.objects, "aupdate_or_create", database_down)
    result = await example.survey.aenqueue()
    with caplog.at_level(logging.ERROR, logger="tasks.worker"):
        await run_worker(max_tasks=1)
    db_result = await DBTaskResult.objects.aget(id=result.id)
    assert (db_result.status, len(db_result.worker_ids)) == ("READY", 1)
    assert db_result.run_after > timezone.now()
    assert db_result.exception_class_path == "django.db.utils.OperationalError"
