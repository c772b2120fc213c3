from django.apps import apps
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from core.auth import token_required
from core.readiness import run_checks


def features() -> list[dict]:
    """The installed apps that describe themselves (a `summary` on their AppConfig)."""
    found = []
    for app in apps.get_app_configs():
        if not hasattr(app, "summary"):
            continue
        text, url_name = getattr(app, "home_link", None) or (None, None)
        found.append(
            {
                "name": app.verbose_name,
                "summary": app.summary,
                "link": (text, reverse(url_name)) if url_name else None,
                "panel": getattr(app, "home_panel", None),
            }
        )
    return found


@require_safe
async def home(request: HttpRequest) -> HttpResponse:
    """GET /: what this service offers, with a live panel for each live feature."""
    listed = features()
    context = {
        "title": apps.get_app_config("core").verbose_name,
        "features": listed,
        "panels": [feature["panel"] for feature in listed if feature["panel"]],
    }
    # Rendered here on the event loop (a TemplateResponse would cost a thread
    # hop): the template reads nothing that queries the database, like `user`.
    return render(request, "core/home.html", context)


@never_cache
@require_safe
async def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Touches nothing else."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
async def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 when every dependency answers, 503 naming the ones that do not.

    The checks named in READINESS_ADVISORY are reported but never make it 503:
    what they watch (a background worker) does not stop this process serving.
    """
    checks = await run_checks()
    advisory = set(settings.READINESS_ADVISORY)
    ready = all(check["ok"] for name, check in checks.items() if name not in advisory)
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
