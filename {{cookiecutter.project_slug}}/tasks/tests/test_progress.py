"""Progress: the TaskProgress row, the `task.progress`/`task.finished` events, and the example
task end to end through the worker."""

import asyncio
import json
from importlib import import_module

import pytest
from django.apps import apps
from django.tasks import TaskContext
from django_tasks_db.models import DBTaskResult

from tasks import progress
from tasks.models import Survey, TaskProgress
from tasks.tests import jobs
from tasks.tests.conftest import WORKER_TIMEOUT, run_worker

pytestmark = pytest.mark.django_db(transaction=True)


class Events:
    """What a subscription to the broker receives, as (name, data) pairs."""

    def __init__(self, subscription):
        self.subscription = subscription
        self.received: list[tuple[str, dict]] = []

    async def until(self, name: str, **data) -> list[tuple[str, dict]]:
        """Everything received until an event `name` whose data holds `data`, that one included."""
        async with asyncio.timeout(WORKER_TIMEOUT):
            while True:
                for event in await self.subscription.next_batch():
                    self.received.append((event.name, json.loads(event.data)))
                    if event.name == name and all(
                        self.received[-1][1].get(key) == value for key, value in data.items()
                    ):
                        return self.received


def install_upstreams(settings) -> None:
    """With use_httpx the survey calls DASHBOARD_SOURCES: answer them without a network."""
    if not apps.is_installed("upstreams"):
        return
    import httpx

    # Imported by name: the upstreams app exists only with use_httpx.
    upstreams_client = import_module("upstreams.client")

    settings.DASHBOARD_SOURCES = "self=/healthz"

    def healthy(request: httpx.Request) -> httpx.Response:
        assert request.url == f"{settings.DASHBOARD_SELF_URL}/healthz"
        return httpx.Response(200, json={"status": "ok"})

    client = upstreams_client.make_client(transport=httpx.MockTransport(healthy))
    upstreams_client.use_client(client)


async def test_report_writes_the_progress_that_get_shows(async_client, token_headers, settings):
    settings.TASKS_PROGRESS_EVENTS = None
    result = await jobs.add.aenqueue(1, 1)
    context = TaskContext(task_result=result)
    await progress.report(context, 1, 3, "x" * 300)
    await progress.report(context, 2, 3, "second")
    row = await TaskProgress.objects.aget(result_id=result.id)
    assert (row.done, row.total, row.message) == (2, 3, "second")
    await progress.report(context, 3, 3, "x" * 300)
    assert len((await TaskProgress.objects.aget(result_id=result.id)).message) == 200
    state = (await async_client.get(f"/tasks/{result.id}/", headers=token_headers)).json()
    assert state["progress"] == {"done": 3, "total": 3, "message": "x" * 200}


@pytest.mark.parametrize("mode", ["worker", "relay"])
async def test_progress_then_finished_reach_the_broker(event_broker, settings, mode):
    """ "worker" (Redis): the worker publishes; "relay" (memory): the web process does.

    Each runs here against the project's own broker; the events are the same.
    """
    settings.TASKS_PROGRESS_EVENTS = mode
    async with event_broker.subscribe(None) as subscription:
        events = Events(subscription)
        result = await jobs.reporting.aenqueue("go")
        relays = []
        if mode == "relay":  # as the view that enqueues does (tasks.progress.start_relay)
            relays.append(asyncio.create_task(progress.relay(result.id, "reporting", 0.01)))
        worker = asyncio.create_task(run_worker(max_tasks=1))
        await events.until("task.progress", done=1)
        jobs.gate("go").set()
        received = await events.until("task.finished")
        await worker
        async with asyncio.timeout(WORKER_TIMEOUT):
            await asyncio.gather(*relays)
    first = {"id": result.id, "task": "reporting", "total": 2}
    assert received == [
        ("task.progress", {**first, "done": 1, "message": "first half"}),
        ("task.progress", {**first, "done": 2, "message": "second half"}),
        ("task.finished", {"id": result.id, "task": "reporting", "status": "SUCCESSFUL"}),
    ]


async def test_without_events_no_relay_starts_and_the_task_runs(settings):
    """use_sse=false: no broker to publish to, and nothing tries (events would not import)."""
    settings.TASKS_PROGRESS_EVENTS = None
    result = await jobs.reporting.aenqueue("quiet")
    progress.start_relay(result.id, "reporting")
    assert not progress._relays
    jobs.gate("quiet").set()
    await run_worker(max_tasks=1)
    assert (await DBTaskResult.objects.aget(id=result.id)).status == "SUCCESSFUL"
    assert (await TaskProgress.objects.aget(result_id=result.id)).done == 2


async def test_with_events_off_the_worker_publishes_nothing(event_broker, settings):
    from events.broker import apublish

    settings.TASKS_PROGRESS_EVENTS = None
    async with event_broker.subscribe(None) as subscription:
        jobs.gate("quiet").set()
        await jobs.reporting.aenqueue("quiet")
        await run_worker(max_tasks=1)
        await apublish("sentinel", 1)
        received = await Events(subscription).until("sentinel")
    assert received == [("sentinel", 1)]


async def post_survey(async_client, token_headers) -> str:
    response = await async_client.post(
        "/tasks/survey/", b"{}", content_type="application/json", headers=token_headers
    )
    assert response.status_code == 202
    return response["Location"]


async def test_the_example_survey_end_to_end(async_client, token_headers, settings):
    settings.TASKS_PROGRESS_EVENTS = None
    install_upstreams(settings)
    location = await post_survey(async_client, token_headers)
    await run_worker(max_tasks=1)
    state = (await async_client.get(location, headers=token_headers)).json()
    names = list(settings.TASKS_SURVEY_CHECKS)
    assert (state["status"], state["attempts"], state["errors"]) == ("SUCCESSFUL", 1, [])
    assert state["progress"] == {"done": len(names), "total": len(names), "message": names[-1]}
    checks = state["result"]["checks"]
    assert set(checks) == set(names)  # jsonb keeps no order
    assert all(set(check) >= {"ok", "ms"} for check in checks.values())
    assert checks["database"]["ok"]
    if "upstreams" in checks:
        assert checks["upstreams"] == {"ok": True, "ms": checks["upstreams"]["ms"]}
    survey = await Survey.objects.aget(result_id=state["id"])
    assert (survey.checks, survey.ok) == (checks, state["result"]["ok"])


async def test_the_example_survey_sends_its_progress_as_events(
    event_broker, async_client, token_headers, settings
):
    """Through the API, as the home page does: in "relay" mode the POST starts the relay."""
    install_upstreams(settings)
    total = len(settings.TASKS_SURVEY_CHECKS)
    async with event_broker.subscribe(None) as subscription:
        location = await post_survey(async_client, token_headers)
        result_id = location.split("/")[-2]
        await run_worker(max_tasks=1)
        received = await Events(subscription).until("task.finished", id=result_id)
    async with asyncio.timeout(WORKER_TIMEOUT):
        await asyncio.gather(*progress._relays)
    *progressed, finished = received
    assert finished == (
        "task.finished",
        {"id": result_id, "task": "survey", "status": "SUCCESSFUL"},
    )
    done = [data["done"] for name, data in progressed if name == "task.progress"]
    # The worker sends every step; a relay the latest at each poll, the last one always.
    assert done == sorted(set(done))
    assert done[-1] == total
    if settings.TASKS_PROGRESS_EVENTS == "worker":
        assert done == list(range(total + 1))
