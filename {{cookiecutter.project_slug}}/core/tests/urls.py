"""The project's URLs plus a few views that exercise sessions, messages and sync code."""

import asyncio
import threading

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.http import HttpResponse, JsonResponse
from django.middleware.csp import get_nonce
from django.urls import path
from django.utils.csp import CSP
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csp import csp_override, csp_report_only_override

from config.urls import urlpatterns as project_urlpatterns


def sync_view(request):
    return JsonResponse({"sync": True})


async def add_message(request):
    await request.session.aset("visited", True)
    messages.info(request, "saved")
    return HttpResponse("added")


def read_messages(request):
    return JsonResponse({"messages": [str(message) for message in messages.get_messages(request)]})


async def count_users(request):
    return JsonResponse({"users": await get_user_model().objects.acount()})


async def count_users_then_wait(request):
    """Counts the users, then waits until cancelled."""
    await get_user_model().objects.acount()
    await asyncio.Event().wait()


async def thread_ids(request):
    """The thread of two sync calls, a moment apart."""
    first = await sync_to_async(threading.get_ident)()
    await asyncio.sleep(0.05)
    second = await sync_to_async(threading.get_ident)()
    return JsonResponse([first, second], safe=False)


async def page(request):
    """A page that uses the CSP nonce, as the home page does."""
    return HttpResponse(f'<script nonce="{get_nonce(request)}"></script>')


async def own_headers(request):
    """A response that sets the headers the header middleware would otherwise add."""
    response = await page(request)
    response["X-Frame-Options"] = "SAMEORIGIN"
    response["Content-Security-Policy"] = "default-src 'none'"
    response["Referrer-Policy"] = "no-referrer"
    response["Cross-Origin-Opener-Policy"] = "unsafe-none"
    return response


# Each way a view opts out of, or overrides, the header middleware's defaults.
HEADER_VIEWS = {
    "/tests/headers/page/": page,
    "/tests/headers/own/": own_headers,
    "/tests/headers/frame-exempt/": xframe_options_exempt(page),
    "/tests/headers/csp-override/": csp_override({"default-src": [CSP.SELF, CSP.NONCE]})(page),
    "/tests/headers/csp-off/": csp_override({})(csp_report_only_override({})(page)),
    "/tests/headers/csp-report-only/": csp_report_only_override({"img-src": [CSP.NONE]})(page),
}

WAITING, RELEASE = threading.Event(), threading.Event()


def wait_for_release(request):
    """A sync view that holds its thread until the test releases it (5 s at most)."""
    WAITING.set()
    RELEASE.wait(5)
    return JsonResponse({"released": RELEASE.is_set()})


urlpatterns = [
    *project_urlpatterns,
    path("tests/wait-for-release/", wait_for_release),
    *(path(route.lstrip("/"), view) for route, view in HEADER_VIEWS.items()),
    path("tests/sync/", sync_view),
    path("tests/add-message/", add_message),
    path("tests/read-messages/", read_messages),
    path("tests/count-users/", count_users),
    path("tests/count-users-then-wait/", count_users_then_wait),
    path("tests/thread-ids/", thread_ids),
]
