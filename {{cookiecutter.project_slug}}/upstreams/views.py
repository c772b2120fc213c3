from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from upstreams.client import get_client
from upstreams.dashboard import collect, dashboard_round, on_this_server, parse_sources


@never_cache
@require_safe
async def dashboard(request: HttpRequest) -> JsonResponse:
    """Always 200: each source says whether it answered in time.

    The view is public and takes no input, so every request wants the same
    round of upstream calls: concurrent requests share one, and its result
    serves DASHBOARD_CACHE_SECONDS more (upstreams.dashboard.SharedRound).
    """
    configured = parse_sources(settings.DASHBOARD_SOURCES)  # validated at start-up (checks.py)
    # A path source ("self=/healthz") is called on the port this request came in on.
    sources = on_this_server(configured, request.scope.get("server"))
    results = await dashboard_round.result(tuple(sources), lambda: collect(get_client(), sources))
    return JsonResponse({"sources": results})
