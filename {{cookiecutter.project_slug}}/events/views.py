import json

from django.conf import settings
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.views.decorators.http import require_GET, require_POST

from core.auth import token_required
from events.broker import BrokerUnavailable, InvalidEvent, apublish, get_broker
from events.stream import event_stream

# The body wraps the data in {"event": ..., "data": ...}: allow a little room for that.
ENVELOPE_BYTES = 1024


@require_GET
async def stream(request: HttpRequest) -> StreamingHttpResponse:
    """GET /events/: every published event, as text/event-stream.

    Resumes after the `Last-Event-ID` header that EventSource sends on
    reconnect (or `?last_event_id=`, for a page that kept the id itself).
    """
    last_event_id = request.headers.get("Last-Event-ID") or request.GET.get("last_event_id")
    response = StreamingHttpResponse(
        event_stream(get_broker(), last_event_id), content_type="text/event-stream"
    )
    response["Cache-Control"] = "no-cache"
    # nginx buffers proxied responses unless told not to.
    response["X-Accel-Buffering"] = "no"
    return response


def bad_request(detail: str) -> JsonResponse:
    return JsonResponse({"detail": detail}, status=400)


@require_POST
@token_required
async def publish(request: HttpRequest) -> JsonResponse:
    """POST /events/publish/ {"event": name, "data": JSON} -> 202 {"id": event id}."""
    limit = settings.SSE_MAX_DATA_BYTES + ENVELOPE_BYTES
    if len(request.body) > limit:
        return bad_request(f"The body is larger than {limit} bytes.")
    try:
        body = json.loads(request.body)
    except ValueError:
        return bad_request('The body must be JSON: {"event": "<name>", "data": <any JSON>}.')
    if not isinstance(body, dict) or "event" not in body or "data" not in body:
        return bad_request('The body must be a JSON object with "event" and "data".')
    if unexpected := sorted(body.keys() - {"event", "data"}):
        return bad_request(f"Unexpected fields: {', '.join(unexpected)}.")
    try:
        event_id = await apublish(body["event"], body["data"])
    except InvalidEvent as invalid:
        return bad_request(f"Invalid event: {invalid}.")
    except BrokerUnavailable:
        response = JsonResponse({"detail": "The event broker is unavailable."}, status=503)
        response["Retry-After"] = "1"
        return response
    return JsonResponse({"id": event_id}, status=202)
