from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from core.auth import token_required
from core.readiness import run_checks


@never_cache
@require_safe
async def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Touches nothing else."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
async def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 when every dependency answers, 503 naming the ones that do not."""
    checks = await run_checks()
    ready = all(check["ok"] for check in checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )


@never_cache
@require_safe
@token_required
async def whoami(request: HttpRequest) -> JsonResponse:
    """Who the bearer token belongs to: a quick way to check a token."""
    user = await request.auser()
    return JsonResponse({"username": user.get_username()})
