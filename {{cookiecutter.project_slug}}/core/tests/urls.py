"""The project's URLs plus a few views that exercise sessions, messages and sync code."""

import asyncio
import threading

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.http import HttpResponse, JsonResponse
from django.urls import path

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


urlpatterns = [
    *project_urlpatterns,
    path("tests/sync/", sync_view),
    path("tests/add-message/", add_message),
    path("tests/read-messages/", read_messages),
    path("tests/count-users/", count_users),
    path("tests/count-users-then-wait/", count_users_then_wait),
    path("tests/thread-ids/", thread_ids),
]
