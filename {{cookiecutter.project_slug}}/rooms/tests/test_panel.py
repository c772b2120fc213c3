"""The home page's chat panel carries what rooms.js reads to say why it is not connected."""

import re
from html import unescape

from django.contrib.staticfiles import finders
from django.urls import reverse

PANEL = re.compile(r'<section class="panel" id="rooms-panel"(.*?)</section>', re.DOTALL)


async def test_the_panel_carries_what_rooms_js_reads(async_client):
    html = (await async_client.get("/")).content.decode()
    panel = PANEL.search(html)
    assert panel, "no chat panel on the home page"
    panel = unescape(panel.group(0))
    assert 'data-socket-path="/ws/rooms/"' in panel
    assert f'data-readyz-url="{reverse("readyz")}"' in panel
    assert '<p class="problem" role="alert" hidden></p>' in panel


def test_rooms_js_says_why_it_is_not_connected():
    with open(finders.find("rooms/rooms.js"), encoding="utf-8") as script:
        source = script.read()
    for hook in ("dataset.socketPath", "dataset.readyzUrl", '".problem"'):
        assert hook in source, hook
