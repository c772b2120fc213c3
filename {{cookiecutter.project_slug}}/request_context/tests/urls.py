import logging

from django.http import JsonResponse, StreamingHttpResponse
from django.urls import path

from config.urls import urlpatterns as project_urlpatterns

logger = logging.getLogger("request_context.tests")


async def async_view(request):
    logger.info("inside the async view")
    return JsonResponse({"id": request.id})


def sync_view(request):
    logger.info("inside the sync view")
    return JsonResponse({"id": request.id})


async def failing_view(request):
    raise RuntimeError("boom")


async def streaming_view(request):
    async def chunks():
        yield b"first,"
        yield b"second"

    return StreamingHttpResponse(chunks(), content_type="text/plain")


urlpatterns = [
    *project_urlpatterns,
    path("rc/async/", async_view),
    path("rc/sync/", sync_view),
    path("rc/fail/", failing_view),
    path("rc/stream/", streaming_view),
]
