"""The home page's chat panel carries what rooms.js reads to say why it is not connected."""

from django.contrib.staticfiles import finders
from django.urls import reverse

from core.testing import home_panel


async def test_the_panel_carries_what_rooms_js_reads(async_client):
    panel = await home_panel(async_client, "rooms-panel")
    assert 'data-socket-path="/ws/rooms/"' in panel
    assert f'data-readyz-url="{reverse("readyz")}"' in panel
    assert '<p class="problem" role="alert" hidden></p>' in panel


def test_rooms_js_says_why_it_is_not_connected():
    with open(finders.find("rooms/rooms.js"), encoding="utf-8") as script:
        source = script.read()
    for hook in ("dataset.socketPath", "dataset.readyzUrl", '".problem"'):
        assert hook in source, hook
