"""The example task's check of the upstream services (settings.TASKS_SURVEY_CHECKS)."""

import httpx
from django.conf import settings

from core.readiness import CheckFailed
from upstreams.client import get_client
from upstreams.dashboard import collect, on_this_server, parse_sources


class SourcesFailing(CheckFailed):
    """Some DASHBOARD_SOURCES did not answer; the message names them."""


async def sources_answer() -> None:
    """Call every DASHBOARD_SOURCES entry at once through the shared client, as the dashboard does.

    A worker serves no request whose address a path source (self=/healthz)
    could be called at, so a path is called on DASHBOARD_SELF_URL. Raises
    SourcesFailing naming the sources that did not answer.
    """
    self_url = httpx.URL(settings.DASHBOARD_SELF_URL)
    server = (self_url.host, self_url.port or (443 if self_url.scheme == "https" else 80))
    sources = on_this_server(parse_sources(settings.DASHBOARD_SOURCES), server)
    results = await collect(get_client(), sources)
    if failing := [name for name, result in results.items() if not result["ok"]]:
        raise SourcesFailing(", ".join(failing))
