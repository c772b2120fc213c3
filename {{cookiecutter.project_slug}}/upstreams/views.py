from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from upstreams.client import get_client
from upstreams.dashboard import collect, parse_sources


@never_cache
@require_safe
async def dashboard(request: HttpRequest) -> JsonResponse:
    """Always 200: each source says whether it answered in time."""
    sources = parse_sources(settings.DASHBOARD_SOURCES)  # validated at start-up (checks.py)
    return JsonResponse({"sources": await collect(get_client(), sources)})
