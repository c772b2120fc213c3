"""The home page's tasks panel: how to enqueue, live progress or how to poll; tasks.js."""

import re
import uuid

from django.contrib.staticfiles import finders
from django.urls import resolve, reverse

from core.testing import home_panel
from tasks import views
from tasks.progress import events_mode

POLL = re.compile(r'curl http://testserver(\S+) \\\n  -H "Authorization: Bearer <token>"')


async def test_the_panel_gives_the_enqueue_command_for_this_server(async_client):
    panel = await home_panel(async_client, "tasks-panel")
    command = "curl -X POST http://testserver/tasks/survey/ \\\n"
    assert command + '  -H "Authorization: Bearer <token>"' in panel
    assert resolve(reverse("tasks:survey")).func is views.enqueue_survey
    # ...how to get a token, and what runs the tasks.
    assert "uv run python manage.py create_api_token alice" in panel
    assert "uv run python manage.py worker" in panel
    assert '<p class="worker" role="status">' in panel
    assert f'data-readyz-url="{reverse("readyz")}"' in panel


async def test_with_progress_events_the_panel_listens_on_the_stream(async_client):
    panel = await home_panel(async_client, "tasks-panel")
    if events_mode():  # this project has Server-Sent Events
        assert f'data-stream-url="{reverse("events:stream")}"' in panel
        assert '<span class="state" data-state="connecting" role="status">' in panel
        assert '<p class="problem" role="alert" hidden></p>' in panel
        assert '<ol class="log tasks"></ol>' in panel
        assert POLL.search(panel) is None
    else:
        assert "data-stream-url" not in panel
        assert POLL.search(panel)


async def test_without_progress_events_the_panel_says_how_to_poll(async_client, settings):
    settings.TASKS_PROGRESS_EVENTS = None
    panel = await home_panel(async_client, "tasks-panel")
    assert "data-stream-url" not in panel
    assert 'class="state"' not in panel
    assert '<ol class="log tasks">' not in panel
    # GET /tasks/<id>/ on this server: the placeholder stands where the id goes.
    poll = POLL.search(panel)
    assert poll, panel
    assert poll.group(1) == "/tasks/<id>/"
    task_id = uuid.uuid4()
    match = resolve(poll.group(1).replace("<id>", str(task_id)))
    assert match.func is views.detail
    assert match.kwargs == {"result_id": task_id}


async def test_the_panel_loads_its_script_in_every_mode(async_client, settings):
    for mode in {events_mode(), None}:
        settings.TASKS_PROGRESS_EVENTS = mode
        html = (await async_client.get("/")).content.decode()
        # After core/readiness.js, whose failingChecks() it calls.
        scripts = re.findall(r'<script src="(/static/[^"]+\.js)" defer>', html)
        assert scripts[0] == "/static/core/readiness.js"
        assert "/static/tasks/tasks.js" in scripts


def test_tasks_js_shows_progress_the_worker_and_why_it_is_not_connected():
    with open(finders.find("tasks/tasks.js"), encoding="utf-8") as script:
        source = script.read()
    hooks = (
        # The events tasks.progress publishes, by name: EventSource hands over no others.
        '"task.progress"',
        '"task.finished"',
        "new EventSource(",
        # Resumes after the last event it saw when it has to open a new EventSource.
        "?last_event_id=",
        # Whether a worker runs: /readyz's check; why the stream is down: failingChecks().
        "tasks_worker",
        "window.failingChecks(readyzUrl)",
        '".problem"',
        "if (!streamUrl) return;",
    )
    for hook in hooks:
        assert hook in source, hook
