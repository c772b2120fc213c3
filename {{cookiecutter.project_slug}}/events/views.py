from collections.abc import AsyncIterator

from django.conf import settings
from django.core.exceptions import TooManyFieldsSent
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.views.decorators.http import require_POST, require_safe

from core.auth import token_required
from core.client_json import ClientJSONError, loads
from core.limits import max_body
from events.broker import BrokerUnavailable, InvalidEvent, apublish, get_broker
from events.stream import event_stream

# The body wraps the data in {"event": ..., "data": ...}: allow a little room for that.
ENVELOPE_BYTES = 1024
BODY_SHAPE = 'The body must be JSON: {"event": "<name>", "data": <any JSON>}'


@require_safe
async def stream(request: HttpRequest) -> StreamingHttpResponse | JsonResponse:
    """GET /events/: every published event, as text/event-stream.

    Resumes after the `Last-Event-ID` header that EventSource sends on
    reconnect (or `?last_event_id=`, for a page that kept the id itself). HEAD
    answers with the same status and headers, an empty body and no
    subscription. 400 JSON for a query string Django refuses to parse.
    """
    last_event_id = request.headers.get("Last-Event-ID")
    if not last_event_id:
        try:
            last_event_id = request.GET.get("last_event_id")
        except TooManyFieldsSent:
            # Raised from here, Django would log it at ERROR: it is the client's mistake.
            return bad_request("The query string has too many fields.")
    # HEAD gets the same headers and a body that subscribes to nothing.
    is_head = request.method == "HEAD"
    content = no_events() if is_head else event_stream(get_broker(), last_event_id)
    response = StreamingHttpResponse(content, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    # nginx buffers proxied responses unless told not to.
    response["X-Accel-Buffering"] = "no"
    return response


async def no_events() -> AsyncIterator[str]:
    """The body of a HEAD answer: nothing (an async iterator, as Django serves GET's)."""
    for chunk in ():
        yield chunk


def bad_request(detail: str) -> JsonResponse:
    return JsonResponse({"detail": detail}, status=400)


@max_body(lambda: settings.SSE_MAX_DATA_BYTES + ENVELOPE_BYTES)  # 413 at the ASGI edge
@require_POST
@token_required
async def publish(request: HttpRequest) -> JsonResponse:
    """POST /events/publish/ {"event": name, "data": JSON} -> 202 {"id": event id}.

    400 JSON for a body that is not such an object of usable JSON
    (core.client_json: no lone surrogates, NaN, out-of-range numbers or deep
    nesting) or whose event is refused; 503 when the broker is unavailable.
    413 JSON, before the body is read, when it is over SSE_MAX_DATA_BYTES
    plus ENVELOPE_BYTES (core/limits.py).
    """
    try:
        body = loads(request.body)
    except ClientJSONError as exc:
        return bad_request(f"{BODY_SHAPE} ({exc}).")
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
