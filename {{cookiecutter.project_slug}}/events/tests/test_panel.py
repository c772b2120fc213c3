"""The home page's live events panel: it says how to publish, and events.js finds its hooks."""

from django.contrib.staticfiles import finders
from django.urls import reverse

from core.testing import database_down, home_panel


async def test_the_panel_gives_the_publish_command_for_this_server(async_client):
    panel = await home_panel(async_client, "events-panel")
    # The README's example, on the host the page was served from.
    assert "curl -X POST http://testserver/events/publish/ \\" in panel
    assert '-H "Authorization: Bearer <token>"' in panel
    assert """-d '{"event": "order.paid", "data": {"id": 5}}'""" in panel
    # ...and how to get a token.
    assert "uv run python manage.py create_api_token alice" in panel


async def test_the_panel_carries_what_events_js_reads(async_client):
    panel = await home_panel(async_client, "events-panel")
    assert f'data-stream-url="{reverse("events:stream")}"' in panel
    assert f'data-readyz-url="{reverse("readyz")}"' in panel
    assert '<p class="problem" role="alert" hidden></p>' in panel


def test_events_js_shows_every_event_and_why_it_is_not_connected():
    with open(finders.find("events/events.js"), encoding="utf-8") as script:
        source = script.read()
    # Every event whatever its name: the stream is read with fetch, not EventSource listeners.
    hooks = ("fetch(panel.dataset.streamUrl", "dataset.readyzUrl", '".problem"', "Last-Event-ID")
    for hook in hooks:
        assert hook in source, hook


async def test_readyz_names_a_failing_check_as_the_panel_shows_it(async_client):
    """events.js shows `name: error` for each check that /readyz says is not ok."""
    with database_down():
        response = await async_client.get(reverse("readyz"))
    assert response.status_code == 503
    database = response.json()["checks"]["database"]
    assert database["ok"] is False
    assert isinstance(database["error"], str)
    assert database["error"]
